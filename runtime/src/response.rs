//! What a handler returns: the typed reply and the headers to send with it.

use crate::metadata::Metadata;

/// A reply and its headers. A handler returns `Ok(reply.into())` when it has no headers to
/// add, or `Ok(Response::new(reply).with_header("x-version", "7"))`. On the caller's side, the
/// request/reply `*_with` client methods return it with the headers of the reply record.
#[derive(Clone, Debug, Default)]
pub struct Response<T> {
    message: T,
    headers: Metadata,
}

impl<T> Response<T> {
    /// A reply without headers.
    pub fn new(message: T) -> Self {
        Response {
            message,
            headers: Metadata::new(),
        }
    }

    /// A reply with `headers`.
    pub fn from_parts(headers: Metadata, message: T) -> Self {
        Response { message, headers }
    }

    /// Adds a header to the reply (the transport's own names, `kafka_*` and the trace
    /// headers, are set by the transport and not taken from here).
    pub fn with_header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(key, value);
        self
    }

    /// The reply.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The reply, dropping the headers.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The headers and the reply.
    pub fn into_parts(self) -> (Metadata, T) {
        (self.headers, self.message)
    }

    /// The headers.
    pub fn headers(&self) -> &Metadata {
        &self.headers
    }

    /// The headers, mutably.
    pub fn headers_mut(&mut self) -> &mut Metadata {
        &mut self.headers
    }
}

impl<T> From<T> for Response<T> {
    fn from(message: T) -> Self {
        Response::new(message)
    }
}
