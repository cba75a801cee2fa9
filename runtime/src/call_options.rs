//! Per-call options of the `*_with` client methods.

use std::time::Duration;

use crate::metadata::Metadata;

/// The record key, headers and timeout of one call or emit.
///
/// ```
/// use std::time::Duration;
/// use axion_runtime::CallOptions;
///
/// let options = CallOptions::new()
///     .key("project-42")
///     .header("x-tenant", "acme")
///     .timeout(Duration::from_secs(2));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Metadata,
    pub(crate) timeout: Option<Duration>,
}

impl CallOptions {
    /// No key, no headers, the client's timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record key: Kafka sends records with the same key to the same partition, so one
    /// entity's requests and events stay in order.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header. Names the transport sets itself (`kafka_*`, `axion-deadline`,
    /// `traceparent`, `tracestate`) are not sent as given; a valid `traceparent` here becomes
    /// the parent of the call (to continue a trace that came in some other way, e.g. HTTP).
    pub fn header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(key, value);
        self
    }

    /// Adds every header of `headers`.
    pub fn headers(mut self, headers: &Metadata) -> Self {
        self.headers.extend(headers.iter());
        self
    }

    /// How long this call waits (instead of the client's timeout). A call made inside a
    /// handler gets no more than the handler's remaining time either way. Zero (e.g. a
    /// `remaining()` that ran out) fails the call at once with `DEADLINE_EXCEEDED`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}
