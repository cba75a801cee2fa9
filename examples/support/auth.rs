//! A middleware of the example: requests must carry `authorization: Bearer <token>`, else they
//! are answered `UNAUTHENTICATED` (NestJS's error shape) and never reach the handler. Events
//! are the bus's own traffic and pass. A `tower` layer, so it stacks with any other.

use std::sync::Arc;
use std::task::{Context, Poll};

use axion_runtime::middleware::{Layer, Service};
use axion_runtime::{BoxFuture, Incoming, RawReplies, RpcError};

/// The layer: `layered(GraphServiceServer::new(graph), BearerAuth::new(token))`.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Arc<str>,
}

impl BearerAuth {
    /// Accepts requests whose `authorization` header is `Bearer <token>`.
    pub fn new(token: &str) -> Self {
        BearerAuth {
            expected: format!("Bearer {token}").into(),
        }
    }
}

impl<S> Layer<S> for BearerAuth {
    type Service = RequireBearer<S>;
    fn layer(&self, inner: S) -> RequireBearer<S> {
        RequireBearer {
            inner,
            expected: self.expected.clone(),
        }
    }
}

/// The service [`BearerAuth`] wraps around the dispatcher.
#[derive(Clone)]
pub struct RequireBearer<S> {
    inner: S,
    expected: Arc<str>,
}

impl<S> Service<Incoming> for RequireBearer<S>
where
    S: Service<Incoming, Response = RawReplies, Error = RpcError>,
    S::Future: Send + 'static,
{
    type Response = RawReplies;
    type Error = RpcError;
    type Future = BoxFuture<'static, Result<RawReplies, RpcError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let presented = incoming.headers.get("authorization");
        let valid = presented.is_some_and(|p| same_secret(p, self.expected.as_bytes()));
        if incoming.is_request() && !valid {
            let why = match presented {
                None => "no authorization header",
                Some(_) => "the authorization header is not a valid bearer token",
            };
            tracing::info!(pattern = &*incoming.pattern, why, "request refused");
            return Box::pin(async move { Err(RpcError::unauthenticated(why)) });
        }
        let replies = self.inner.call(incoming);
        Box::pin(replies)
    }
}

/// Compares a presented credential with the expected one in time that does not depend on
/// where they differ (a plain `==` stops at the first difference).
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
