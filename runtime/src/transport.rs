//! The seam between generated code and a bus: transports carry raw payloads by pattern.
//!
//! A [`Transport`] is the caller's side (send and emit); a [`Handler`] is the serving side that
//! a transport's server feeds (generated `*Server` types implement it). Payloads are the JSON
//! bytes NestJS peers exchange; headers, correlation and reply routing are the transport's job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_core::Stream;

use crate::{Metadata, RpcError, ServiceContract};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, `Send`, `'static` stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// One raw reply: its JSON payload and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// JSON payload.
    pub payload: Vec<u8>,
    /// Headers: on a server, the ones the handler added; on a caller, the reply record's.
    pub headers: Metadata,
}

impl From<Vec<u8>> for Reply {
    fn from(payload: Vec<u8>) -> Self {
        Reply {
            payload,
            headers: Metadata::new(),
        }
    }
}

/// Raw replies of one request, in order; the stream ends after the last one (NestJS's
/// `kafka_nest-is-disposed`). An `Err` item is the remote error and ends the stream.
pub type RawReplies = BoxStream<Result<Reply, RpcError>>;

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
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Headers to send (the caller's, `axion-deadline` included); the transport adds its own
    /// routing headers.
    pub headers: Metadata,
    /// How long to wait for the first reply, and between replies of a stream.
    pub timeout: Duration,
}

/// One event as a caller hands it to a transport.
#[derive(Clone, Debug)]
pub struct Emit {
    /// Pattern (event topic).
    pub pattern: &'static str,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Headers to send.
    pub headers: Metadata,
}

/// The caller's side of a bus.
pub trait Transport: Send + Sync + 'static {
    /// Sends a request and returns its replies. Resolves once the request is on its way;
    /// the replies arrive through the stream.
    fn send(&self, call: Call) -> BoxFuture<'_, Result<RawReplies, RpcError>>;

    /// Publishes an event (no reply). Resolves when the bus accepted it.
    fn emit(&self, event: Emit) -> BoxFuture<'_, Result<(), RpcError>>;
}

/// What a server received.
///
/// The pattern and the payload are reference-counted (`Arc`), and a consumed record's headers
/// share one buffer: the `Incoming` the Kafka server builds for each attempt from the record
/// it keeps (for a retry or a dead-letter copy), like any clone, copies none of them.
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    /// The pattern (topic) it arrived on.
    pub pattern: Arc<str>,
    /// The raw payload.
    pub payload: Arc<[u8]>,
    /// Correlation id of a request; `None` for an event.
    pub correlation_id: Option<String>,
    /// Every header of the record.
    pub headers: Metadata,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Partition it was read from.
    pub partition: Option<i32>,
    /// Offset in that partition.
    pub offset: Option<i64>,
    /// Record timestamp.
    pub timestamp: Option<SystemTime>,
}

impl Incoming {
    /// A request on `pattern` (what a test feeds a `*Server` directly).
    pub fn request(pattern: &str, payload: impl Into<Arc<[u8]>>, correlation_id: &str) -> Self {
        Incoming {
            pattern: pattern.into(),
            payload: payload.into(),
            correlation_id: Some(correlation_id.to_owned()),
            ..Incoming::default()
        }
    }

    /// An event on `pattern`.
    pub fn event(pattern: &str, payload: impl Into<Arc<[u8]>>) -> Self {
        Incoming {
            pattern: pattern.into(),
            payload: payload.into(),
            ..Incoming::default()
        }
    }

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
