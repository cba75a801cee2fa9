//! Middleware around a dispatcher, as `tower` layers (like tonic): authentication from a
//! header, rate limits, logging, anything cross-cutting.
//!
//! A generated `*Server` is a [`Handler`]; [`HandlerService`] is the same as a
//! `tower::Service<Incoming, Response = RawReplies, Error = RpcError>`, and [`layered`] wraps it
//! in any [`Layer`] (a `tower::ServiceBuilder` stack included) and makes the result a
//! [`Handler`] again, for [`crate::MemoryTransport::serve`] or the Kafka server. A layer sees
//! each message, headers included, before anything is decoded; an `Err` from it is the
//! caller's error reply in NestJS's shape, and the handler never runs.
//!
//! The handler itself runs when the returned reply stream is polled, after the service's
//! future has resolved: a layer that admits, refuses or rewrites messages (authentication,
//! rate limits, header checks) works as is, but one that times or bounds the handler (a
//! timeout, a concurrency limit, latency logging) must wrap that stream, not the future.
//!
//! ```
//! use axion_runtime::middleware::{layered, Layer, Service};
//! use axion_runtime::{Incoming, RawReplies, RpcError};
//!
//! /// Refuses messages without an `authorization` header.
//! #[derive(Clone)]
//! struct RequireAuth<S>(S);
//!
//! impl<S> Service<Incoming> for RequireAuth<S>
//! where
//!     S: Service<Incoming, Response = RawReplies, Error = RpcError>,
//!     S::Future: Send + 'static,
//! {
//!     type Response = RawReplies;
//!     type Error = RpcError;
//!     type Future = axion_runtime::BoxFuture<'static, Result<RawReplies, RpcError>>;
//!     fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RpcError>> {
//!         self.0.poll_ready(cx)
//!     }
//!     fn call(&mut self, incoming: Incoming) -> Self::Future {
//!         if !incoming.headers.contains_key("authorization") {
//!             return Box::pin(async { Err(RpcError::unauthenticated("no authorization header")) });
//!         }
//!         let replies = self.0.call(incoming);
//!         Box::pin(async move { replies.await })
//!     }
//! }
//!
//! /// The layer: `layered(GraphServiceServer::new(svc), RequireAuthLayer)`.
//! struct RequireAuthLayer;
//!
//! impl<S> Layer<S> for RequireAuthLayer {
//!     type Service = RequireAuth<S>;
//!     fn layer(&self, inner: S) -> RequireAuth<S> {
//!         RequireAuth(inner)
//!     }
//! }
//! # fn wrap<H: axion_runtime::Handler>(h: H) -> impl axion_runtime::Handler { layered(h, RequireAuthLayer) }
//! ```
//!
//! Services are cloned per message (the tower convention, as in tonic and axum): state that
//! clones must share (a rate limit's bucket) goes behind an `Arc` in the layer.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
pub use tower_layer::Layer;
pub use tower_service::Service;

use crate::transport::{Handler, Incoming, RawReplies};
use crate::{RpcError, ServiceContract};

/// A [`Handler`] as a `tower::Service`: the innermost service of a stack.
pub struct HandlerService<H: ?Sized>(Arc<H>);

impl<H: ?Sized> Clone for HandlerService<H> {
    fn clone(&self) -> Self {
        HandlerService(Arc::clone(&self.0))
    }
}

impl<H: Handler + ?Sized> Service<Incoming> for HandlerService<H> {
    type Response = RawReplies;
    type Error = RpcError;
    type Future = Ready<Result<RawReplies, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        ready(Ok(self.0.handle(incoming)))
    }
}

/// A service stack served as a [`Handler`] (made by [`layered`]).
pub struct Layered<S> {
    contract: &'static ServiceContract,
    service: S,
}

/// Wraps `handler` in `layer`: `layered(GraphServiceServer::new(svc), RequireAuthLayer)`.
pub fn layered<H, L>(handler: H, layer: L) -> Layered<L::Service>
where
    H: Handler,
    L: Layer<HandlerService<H>>,
{
    let contract = handler.contract();
    Layered {
        contract,
        service: layer.layer(HandlerService(Arc::new(handler))),
    }
}

impl<S> Handler for Layered<S>
where
    S: Service<Incoming, Response = RawReplies, Error = RpcError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn contract(&self) -> &'static ServiceContract {
        self.contract
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let mut service = self.service.clone();
        let replies = async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(incoming).await
        };
        let replies: Pin<Box<dyn Future<Output = Result<RawReplies, RpcError>> + Send>> =
            Box::pin(replies);
        Box::pin(
            replies
                .map(|outcome| match outcome {
                    Ok(replies) => replies,
                    Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })),
                })
                .flatten_stream(),
        )
    }
}
