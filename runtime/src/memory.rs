//! An in-process transport for unit tests of services: no broker, same code paths.
//!
//! Payloads still travel as JSON bytes through the generated codecs and dispatchers, so a
//! test of a service over [`MemoryTransport`] exercises everything but the broker. On
//! request ([`MemoryTransport::with_faults`]) it also does to handlers what Kafka's
//! at-least-once delivery does — duplicates, delays, redelivery of failed events — so their
//! idempotency is tested without a broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

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
/// with `UNAVAILABLE` (instead of timing out), and an event nobody serves is dropped. By
/// default every message is delivered exactly once; [`MemoryTransport::with_faults`] injects
/// what at-least-once delivery does instead ([`DeliveryFaults`]).
#[derive(Clone, Default)]
pub struct MemoryTransport {
    routes: Arc<RwLock<HashMap<&'static str, Route>>>,
    faults: Option<Arc<Injector>>,
}

/// What [`MemoryTransport::with_faults`] does to deliveries: Kafka's at-least-once, on purpose.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryFaults {
    /// Chance (0.0–1.0) that a message is delivered a second time, as after a crash or a
    /// rebalance before its offset was committed: same payload, key, headers, offset and
    /// correlation id. The caller keeps the first reply (as a Kafka caller does); the copy's
    /// replies are dropped; an event's handler runs twice.
    pub duplicate: f64,
    /// Each delivery first waits a random time up to this long, and a copy that much again
    /// after its first delivery started, so a copy may run while the first still runs (delays
    /// also reorder messages, as handlers running side by side in a partition would).
    pub max_delay: Duration,
    /// Deliveries of an event whose handler fails, the first included, as a server's retry
    /// policy makes them (1: never again).
    pub event_attempts: u32,
    /// Seed of the random choices: the same seed and the same calls make the same choices.
    pub seed: u64,
}

impl Default for DeliveryFaults {
    /// No faults: every message delivered once, at once.
    fn default() -> Self {
        DeliveryFaults {
            duplicate: 0.0,
            max_delay: Duration::ZERO,
            event_attempts: 1,
            seed: 0,
        }
    }
}

impl DeliveryFaults {
    /// A bus at its worst within at-least-once: every message delivered twice, each copy up
    /// to 20 ms late, failed events delivered up to 5 times.
    pub fn at_least_once() -> Self {
        DeliveryFaults {
            duplicate: 1.0,
            max_delay: Duration::from_millis(20),
            event_attempts: 5,
            seed: 1,
        }
    }
}

/// The faults and their random source.
#[derive(Debug)]
struct Injector {
    faults: DeliveryFaults,
    rng: Mutex<fastrand::Rng>,
}

impl Injector {
    /// How many deliveries a message gets (1 or 2) and each one's delay.
    fn plan(&self) -> Vec<Duration> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let copies = if rng.f64() < self.faults.duplicate {
            2
        } else {
            1
        };
        let max = self.faults.max_delay.as_micros() as u64;
        let mut delay = Duration::ZERO;
        (0..copies)
            .map(|_| {
                // A copy is a redelivery: it never starts before the first delivery.
                delay += Duration::from_micros(if max == 0 { 0 } else { rng.u64(0..=max) });
                delay
            })
            .collect()
    }
}

#[derive(Clone)]
struct Route {
    /// The pattern, shared with every message of it.
    pattern: Arc<str>,
    handler: Arc<dyn Handler>,
    /// The next offset of the pattern's single partition.
    offsets: Arc<AtomicI64>,
}

impl Route {
    fn incoming(
        &self,
        payload: Vec<u8>,
        key: Option<Vec<u8>>,
        headers: crate::Metadata,
        correlation_id: Option<String>,
    ) -> Incoming {
        crate::metrics::global().consumed(&self.pattern);
        Incoming {
            pattern: self.pattern.clone(),
            payload: payload.into(),
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

    /// An empty transport that delivers with `faults` (see [`DeliveryFaults`]).
    pub fn with_faults(faults: DeliveryFaults) -> Self {
        let rng = Mutex::new(fastrand::Rng::with_seed(faults.seed));
        MemoryTransport {
            routes: Arc::default(),
            faults: Some(Arc::new(Injector { faults, rng })),
        }
    }

    /// Delays of each delivery of one message (one, unless a duplicate is injected).
    fn plan(&self) -> Vec<Duration> {
        match &self.faults {
            Some(injector) => injector.plan(),
            None => vec![Duration::ZERO],
        }
    }

    /// Deliveries of a failed event, the first included.
    fn event_attempts(&self) -> u32 {
        self.faults
            .as_ref()
            .map_or(1, |i| i.faults.event_attempts.max(1))
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
                pattern: pattern.into(),
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
                call.payload,
                call.key,
                call.headers,
                Some(next_correlation_id()),
            );
            let handler = route.handler;
            let mut plan = self.plan().into_iter();
            let first = plan.next().unwrap_or_default();
            // An injected copy: handled too, its replies dropped (the caller has the first's).
            for delay in plan {
                let (handler, incoming) = (handler.clone(), incoming.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut replies = handler.handle(incoming);
                    while replies.next().await.is_some() {}
                });
            }
            // Run the handler on its own task, like a server would, and stream its replies.
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                if !first.is_zero() {
                    tokio::time::sleep(first).await;
                }
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
            let incoming = route.incoming(event.payload, event.key, event.headers, None);
            let attempts = self.event_attempts();
            for delay in self.plan() {
                let (handler, incoming) = (route.handler.clone(), incoming.clone());
                tokio::spawn(async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    deliver_event(&*handler, incoming, pattern, attempts).await;
                });
            }
            Ok(())
        })
    }
}

/// Hands an event to its handler, again after a failure while attempts are left.
async fn deliver_event(handler: &dyn Handler, incoming: Incoming, pattern: &str, attempts: u32) {
    for attempt in 1..=attempts {
        let mut outcome = handler.handle(incoming.clone());
        let mut failed = None;
        while let Some(item) = outcome.next().await {
            if let Err(e) = item {
                failed = Some(e);
            }
        }
        let Some(e) = failed else { return };
        if attempt == attempts {
            tracing::warn!(pattern, attempts, error = %e, "event handler failed; a Kafka server would dead-letter it now");
        } else {
            tracing::debug!(pattern, attempt, error = %e, "event handler failed; delivering it again");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
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
