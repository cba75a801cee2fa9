//! An in-process transport for unit tests of services: no broker, same code paths.
//!
//! Payloads still travel as JSON bytes through the generated codecs and dispatchers, so a
//! test of a service over [`MemoryTransport`] exercises everything but the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use crate::transport::{BoxFuture, Call, Emit, Handler, Incoming, RawReplies, Transport};
use crate::{Client, RpcError};

/// Routes calls to handlers served in the same process.
///
/// A handler sees the context Kafka would give it: the caller's key and headers (deadline
/// included), partition 0, an offset counting the pattern's messages, the send time.
/// Differences from Kafka, by design: a request for a pattern nobody serves fails at once
/// with `UNAVAILABLE` (instead of timing out), and an event nobody serves is dropped.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    routes: Arc<RwLock<HashMap<&'static str, Route>>>,
}

#[derive(Clone)]
struct Route {
    handler: Arc<dyn Handler>,
    /// The next offset of the pattern's single partition.
    offsets: Arc<AtomicI64>,
}

impl Route {
    fn incoming(
        &self,
        pattern: &str,
        payload: Vec<u8>,
        key: Option<Vec<u8>>,
        headers: crate::Metadata,
        correlation_id: Option<String>,
    ) -> Incoming {
        crate::metrics::global().consumed(pattern);
        Incoming {
            pattern: pattern.to_owned(),
            payload,
            correlation_id,
            headers,
            key,
            partition: Some(0),
            offset: Some(self.offsets.fetch_add(1, Ordering::Relaxed)),
            timestamp: Some(SystemTime::now()),
        }
    }
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes.read().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("MemoryTransport")
            .field("patterns", &routes)
            .finish()
    }
}

impl MemoryTransport {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves every pattern of `handler`'s contract.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` if another handler already serves one of the patterns.
    pub fn serve(&self, handler: impl Handler) -> Result<(), RpcError> {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let mut routes = self.routes.write().expect("routes lock poisoned");
        let contract = handler.contract();
        if let Some(taken) = contract.request_topics().find(|p| routes.contains_key(p)) {
            return Err(RpcError::already_exists(format!(
                "pattern {taken} is already served"
            )));
        }
        for pattern in contract.request_topics() {
            let route = Route {
                handler: handler.clone(),
                offsets: Arc::default(),
            };
            routes.insert(pattern, route);
        }
        Ok(())
    }

    /// A [`Client`] over this transport.
    pub fn client(&self) -> Client {
        Client::new(Arc::new(self.clone()))
    }

    fn route(&self, pattern: &str) -> Option<Route> {
        self.routes
            .read()
            .expect("routes lock poisoned")
            .get(pattern)
            .cloned()
    }
}

impl Transport for MemoryTransport {
    fn send(&self, call: Call) -> BoxFuture<'_, Result<RawReplies, RpcError>> {
        Box::pin(async move {
            let route = self.route(call.pattern).ok_or_else(|| {
                RpcError::unavailable(format!("no server subscribed to {}", call.pattern))
            })?;
            let incoming = route.incoming(
                call.pattern,
                call.payload,
                call.key,
                call.headers,
                Some(next_correlation_id()),
            );
            let handler = route.handler;
            // Run the handler on its own task, like a server would, and stream its replies.
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                let mut replies = handler.handle(incoming);
                while let Some(reply) = replies.next().await {
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Box::pin(ReceiverStream(rx)) as RawReplies)
        })
    }

    fn emit(&self, event: Emit) -> BoxFuture<'_, Result<(), RpcError>> {
        Box::pin(async move {
            let pattern = event.pattern;
            let Some(route) = self.route(pattern) else {
                tracing::debug!(pattern, "event dropped: nobody serves it in memory");
                return Ok(());
            };
            let incoming = route.incoming(pattern, event.payload, event.key, event.headers, None);
            let handler = route.handler;
            tokio::spawn(async move {
                let mut outcome = handler.handle(incoming);
                while let Some(item) = outcome.next().await {
                    if let Err(e) = item {
                        tracing::warn!(pattern, error = %e, "event handler failed");
                    }
                }
            });
            Ok(())
        })
    }
}

fn next_correlation_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("mem-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc::Receiver;

    /// `tokio::sync::mpsc::Receiver` as a `Stream`.
    pub struct ReceiverStream<T>(pub Receiver<T>);

    impl<T> futures_core::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
