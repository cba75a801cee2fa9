//! The seam between generated code and a bus: transports carry raw payloads by pattern.
//!
//! A [`Transport`] is the caller's side (send and emit); a [`Handler`] is the serving side that
//! a transport's server feeds (generated `*Server` types implement it). Payloads are the JSON
//! bytes NestJS peers exchange; headers, correlation and reply routing are the transport's job.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

use crate::{RpcError, ServiceContract};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, `Send`, `'static` stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// Raw reply payloads of one request, in order; the stream ends after the last one
/// (NestJS's `kafka_nest-is-disposed`). An `Err` item is the remote error and ends the stream.
pub type RawReplies = BoxStream<Result<Vec<u8>, RpcError>>;

/// Typed replies of a server-streaming rpc.
pub type ResponseStream<T> = BoxStream<Result<T, RpcError>>;

/// One request as a caller hands it to a transport.
#[derive(Clone, Debug)]
pub struct Call {
    /// Pattern (request topic).
    pub pattern: &'static str,
    /// Reply topic (`<pattern>.reply`).
    pub reply_topic: &'static str,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// How long to wait for the first reply, and between replies of a stream.
    pub timeout: Duration,
}

/// The caller's side of a bus.
pub trait Transport: Send + Sync + 'static {
    /// Sends a request and returns its replies. Resolves once the request is on its way;
    /// the replies arrive through the stream.
    fn send(&self, call: Call) -> BoxFuture<'_, Result<RawReplies, RpcError>>;

    /// Publishes an event (no reply). Resolves when the bus accepted it.
    fn emit(&self, pattern: &'static str, payload: Vec<u8>) -> BoxFuture<'_, Result<(), RpcError>>;
}

/// What a server received.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The pattern (topic) it arrived on.
    pub pattern: String,
    /// The raw payload.
    pub payload: Vec<u8>,
    /// Correlation id of a request; `None` for an event.
    pub correlation_id: Option<String>,
}

impl Incoming {
    /// Whether the sender waits for a reply.
    pub fn is_request(&self) -> bool {
        self.correlation_id.is_some()
    }
}

/// The serving side of a service: generated `*Server` types implement it.
pub trait Handler: Send + Sync + 'static {
    /// The contract served (patterns to subscribe, consumer group).
    fn contract(&self) -> &'static ServiceContract;

    /// Handles one message. For a request, the stream yields the reply payloads (one for
    /// request/reply, N for a server stream) or ends with an error. For an event, the stream
    /// yields nothing, or one error to log.
    fn handle(&self, incoming: Incoming) -> RawReplies;
}

impl<H: Handler + ?Sized> Handler for std::sync::Arc<H> {
    fn contract(&self) -> &'static ServiceContract {
        (**self).contract()
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        (**self).handle(incoming)
    }
}
