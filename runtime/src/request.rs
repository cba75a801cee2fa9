//! What a handler receives: the typed message and its [`Context`] (headers, key, where it was
//! read, correlation id, deadline, span).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::deadline;
use crate::metadata::Metadata;
use crate::transport::Incoming;

/// A request (or event) as a generated trait method receives it: the decoded message and the
/// context it arrived with. Modelled on `tonic::Request`.
///
/// ```
/// use axion_runtime::Request;
///
/// let request = Request::new("payload");
/// assert_eq!(*request.get_ref(), "payload");
/// assert_eq!(request.context().correlation_id(), None);
/// assert_eq!(request.into_inner(), "payload");
/// ```
#[derive(Debug)]
pub struct Request<T> {
    message: T,
    context: Context,
}

impl<T> Request<T> {
    /// A request with an empty context (no headers, key, deadline): for calling a service
    /// implementation directly in a test.
    pub fn new(message: T) -> Self {
        Request {
            message,
            context: Context::default(),
        }
    }

    /// A request from its parts.
    pub fn from_parts(context: Context, message: T) -> Self {
        Request { message, context }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message, dropping the context.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The context and the message.
    pub fn into_parts(self) -> (Context, T) {
        (self.context, self.message)
    }

    /// The context it arrived with.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The context, mutably (to attach headers in a test, for instance).
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The message's headers (shorthand for `context().headers()`).
    pub fn headers(&self) -> &Metadata {
        &self.context.headers
    }
}

/// Where and how a message arrived. The same on every transport: the in-memory transport fills
/// in what Kafka would (partition 0, increasing offsets, the send time).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub(crate) pattern: Arc<str>,
    pub(crate) headers: Metadata,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) partition: Option<i32>,
    pub(crate) offset: Option<i64>,
    pub(crate) timestamp: Option<SystemTime>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) deadline: Option<SystemTime>,
    pub(crate) span: Option<tracing::Span>,
    /// The processing span's W3C context.
    pub(crate) trace: Option<opentelemetry::trace::SpanContext>,
}

impl Context {
    /// The context of a message a transport received.
    pub(crate) fn of(incoming: &mut Incoming) -> Self {
        let deadline = match &incoming.correlation_id {
            // Only a caller that waits has a deadline; an event is always handled.
            Some(_) => incoming
                .headers
                .get(deadline::HEADER)
                .and_then(deadline::parse),
            None => None,
        };
        Context {
            pattern: std::mem::take(&mut incoming.pattern),
            headers: std::mem::take(&mut incoming.headers),
            key: incoming.key.take(),
            partition: incoming.partition,
            offset: incoming.offset,
            timestamp: incoming.timestamp,
            correlation_id: incoming.correlation_id.take(),
            deadline,
            span: None,
            trace: None,
        }
    }

    /// The pattern (topic) it arrived on.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Every header of the record as it arrived, the transport's own included (`kafka_*`,
    /// `axion-deadline`, `traceparent`).
    pub fn headers(&self) -> &Metadata {
        &self.headers
    }

    /// The headers, mutably.
    pub fn headers_mut(&mut self) -> &mut Metadata {
        &mut self.headers
    }

    /// The record key, if it had one.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The record key as text; `None` if absent or not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The partition it was read from.
    pub fn partition(&self) -> Option<i32> {
        self.partition
    }

    /// Its offset in that partition.
    pub fn offset(&self) -> Option<i64> {
        self.offset
    }

    /// The record's timestamp (set by the producer or the broker).
    pub fn timestamp(&self) -> Option<SystemTime> {
        self.timestamp
    }

    /// The correlation id of a request; `None` for an event.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// Whether the sender waits for a reply.
    pub fn is_request(&self) -> bool {
        self.correlation_id.is_some()
    }

    /// When the caller stops waiting (header `axion-deadline`); `None` when it sent none.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// Time left until the deadline (zero once it passed); `None` without a deadline.
    /// Calls the handler makes through a generated client are bounded by it.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(deadline::remaining)
    }

    /// The span the message is processed in (`Span::current()` inside the handler);
    /// disabled for a context made by hand.
    pub fn span(&self) -> tracing::Span {
        self.span.clone().unwrap_or_else(tracing::Span::none)
    }

    /// The trace the message belongs to (32 hex digits): the one its `traceparent` named, or
    /// a new one when it had none. `None` for a context made by hand, and with telemetry off
    /// ([`crate::telemetry`]).
    pub fn trace_id(&self) -> Option<String> {
        self.trace.as_ref().map(|t| t.trace_id().to_string())
    }

    /// The id of the span processing the message (16 hex digits): the parent of the replies,
    /// events and calls the handler sends.
    pub fn span_id(&self) -> Option<String> {
        self.trace.as_ref().map(|t| t.span_id().to_string())
    }

    /// Sets the record key (for a context built in a test).
    pub fn set_key(&mut self, key: impl Into<Vec<u8>>) {
        self.key = Some(key.into());
    }

    /// Sets the deadline (for a context built in a test).
    pub fn set_deadline(&mut self, deadline: SystemTime) {
        self.deadline = Some(deadline);
    }
}
