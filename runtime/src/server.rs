//! Helpers the generated dispatchers (`*Server::handle`) call: decode, run the handler,
//! encode, and turn failures (including panics) into NestJS-shaped errors.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::transport::{RawReplies, ResponseStream};
use crate::{json, RpcError, INTERNAL_SERVER_ERROR_MESSAGE};

fn once(result: Result<Vec<u8>, RpcError>) -> RawReplies {
    Box::pin(futures_util::stream::once(async move { result }))
}

fn panicked(pattern: &str) -> RpcError {
    tracing::error!(pattern, "handler panicked");
    RpcError::message_only(INTERNAL_SERVER_ERROR_MESSAGE)
}

/// Request/reply: decodes the request, runs `handler`, encodes its reply.
pub fn unary<Req, Resp, F, Fut>(pattern: &str, payload: &[u8], handler: F) -> RawReplies
where
    Req: DeserializeOwned + Default + 'static,
    Resp: Serialize + 'static,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    let request = match json::decode::<Req>(payload) {
        Ok(r) => r,
        Err(e) => return once(Err(e)),
    };
    let pattern = pattern.to_owned();
    let fut = AssertUnwindSafe(handler(request)).catch_unwind();
    Box::pin(futures_util::stream::once(async move {
        match fut.await {
            Ok(Ok(reply)) => json::encode(&reply),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(panicked(&pattern)),
        }
    }))
}

/// Server streaming: decodes the request, runs `handler`, encodes each item it streams.
pub fn server_streaming<Req, Resp, F, Fut>(pattern: &str, payload: &[u8], handler: F) -> RawReplies
where
    Req: DeserializeOwned + Default + 'static,
    Resp: Serialize + 'static,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<ResponseStream<Resp>, RpcError>> + Send + 'static,
{
    let request = match json::decode::<Req>(payload) {
        Ok(r) => r,
        Err(e) => return once(Err(e)),
    };
    let pattern = pattern.to_owned();
    let fut = AssertUnwindSafe(handler(request)).catch_unwind();
    let stream = async move {
        match fut.await {
            Ok(Ok(items)) => {
                let p = pattern.clone();
                AssertUnwindSafe(items.map(|item| item.and_then(|v| json::encode(&v))))
                    .catch_unwind()
                    .map(move |r| r.unwrap_or_else(|_| Err(panicked(&p))))
                    .boxed()
            }
            Ok(Err(e)) => futures_util::stream::once(async move { Err(e) }).boxed(),
            Err(_) => {
                let e = panicked(&pattern);
                futures_util::stream::once(async move { Err(e) }).boxed()
            }
        }
    }
    .flatten_stream();
    // An error ends the stream: nothing after it reaches the caller.
    Box::pin(stop_after_error(stream))
}

/// Event: decodes the event and runs `handler`; the stream yields nothing, or the error
/// to log.
pub fn event<Ev, F, Fut>(pattern: &str, payload: &[u8], handler: F) -> RawReplies
where
    Ev: DeserializeOwned + Default + 'static,
    F: FnOnce(Ev) -> Fut,
    Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
{
    let event = match json::decode::<Ev>(payload) {
        Ok(r) => r,
        Err(e) => return once(Err(e)),
    };
    let pattern = pattern.to_owned();
    let fut = AssertUnwindSafe(handler(event)).catch_unwind();
    Box::pin(
        async move {
            match fut.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Err(e)),
                Err(_) => Some(Err(panicked(&pattern))),
            }
        }
        .into_stream()
        .filter_map(|x| async move { x }),
    )
}

/// The reply to a pattern the service does not handle (NestJS's wording).
pub fn no_handler(pattern: &str) -> RawReplies {
    tracing::warn!(pattern, "no handler for pattern");
    once(Err(RpcError::no_handler()))
}

fn stop_after_error(
    stream: impl futures_core::Stream<Item = Result<Vec<u8>, RpcError>> + Send + 'static,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, RpcError>> + Send + 'static {
    futures_util::stream::unfold((Box::pin(stream), false), |(mut s, done)| async move {
        if done {
            return None;
        }
        let item = s.next().await?;
        let stop = item.is_err();
        Some((item, (s, stop)))
    })
}
