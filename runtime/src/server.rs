//! Helpers the generated dispatchers (`*Server::handle`) call: decode, build the request's
//! context, refuse a request whose deadline passed, run the handler in its span (panics
//! caught), encode, and turn failures into NestJS-shaped errors.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::SystemTime;

use futures_util::{FutureExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

use crate::metadata::user_headers;
use crate::metrics::Processing;
use crate::request::{Context, Request};
use crate::response::Response;
use crate::scope::{self, Scope, Scoped};
use crate::transport::{Incoming, RawReplies, Reply, ResponseStream};
use crate::{deadline, json, trace, RpcError, INTERNAL_SERVER_ERROR_MESSAGE};

type Item = Result<Reply, RpcError>;

fn once(result: Item) -> RawReplies {
    Box::pin(futures_util::stream::once(async move { result }))
}

/// NestJS's internal error for a handler that panicked, logged in its processing span (which
/// names the pattern).
fn panicked(span: &tracing::Span) -> RpcError {
    span.in_scope(|| tracing::error!("handler panicked"));
    RpcError::message_only(INTERNAL_SERVER_ERROR_MESSAGE)
}

/// Decodes `incoming` into a typed request with its context and span, or the error reply:
/// the payload does not decode, or the caller's deadline passed before the handler ran.
fn prepare<T: DeserializeOwned + Default + 'static>(
    mut incoming: Incoming,
) -> Result<(Request<T>, Scope, tracing::Span), RpcError> {
    let message = json::decode::<T>(&incoming.payload)?;
    let mut context = Context::of(&mut incoming);
    if let Some(at) = context.deadline {
        if let Ok(late) = SystemTime::now().duration_since(at) {
            tracing::info!(
                pattern = context.pattern(),
                correlation_id = context.correlation_id(),
                late_ms = late.as_millis() as u64,
                "deadline passed before the handler ran; not running it"
            );
            return Err(RpcError::deadline_exceeded(format!(
                "the caller's deadline ({} {}) passed {} ms before the handler ran",
                deadline::HEADER,
                deadline::format(at),
                late.as_millis()
            )));
        }
    }
    let span = process_span(&context);
    if crate::telemetry::enabled() {
        let parent = trace::extract(&context.headers);
        let processing = trace::processing(&span, parent.as_ref());
        span.record("trace_id", tracing::field::display(processing.trace_id()));
        context.trace = Some(processing);
    }
    context.span = Some(span.clone());
    let scope = Scope {
        deadline: context.deadline,
        trace: context.trace.clone(),
    };
    Ok((Request::from_parts(context, message), scope, span))
}

/// The processing span, named and attributed after OpenTelemetry's messaging conventions.
fn process_span(context: &Context) -> tracing::Span {
    tracing::info_span!(
        "process",
        "otel.name" = format_args!("process {}", context.pattern()),
        "otel.kind" = "consumer",
        "messaging.system" = "kafka",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = context.pattern(),
        "messaging.destination.partition.id" = context.partition(),
        "messaging.kafka.offset" = context.offset(),
        "messaging.message.conversation_id" = context.correlation_id(),
        trace_id = tracing::field::Empty,
    )
}

/// The headers of a reply: the handler's (without the transport's names) and the trace
/// context of the processing span.
fn reply_headers(handler: &crate::Metadata, scope: &Scope) -> crate::Metadata {
    let (more, more_bytes) = match scope.trace {
        Some(_) => trace::HEADER_ROOM,
        None => (0, 0),
    };
    let mut headers = user_headers(handler, more, more_bytes);
    if let Some(span) = &scope.trace {
        trace::inject(span, &mut headers);
    }
    headers
}

fn reply<T: Serialize + 'static>(response: Response<T>, scope: &Scope) -> Item {
    let (headers, message) = response.into_parts();
    Ok(Reply {
        payload: json::encode(&message)?,
        headers: reply_headers(&headers, scope),
    })
}

/// Request/reply: decodes the request, runs `handler`, encodes its reply.
pub fn unary<Req, Resp, F, Fut>(incoming: Incoming, handler: F) -> RawReplies
where
    Req: DeserializeOwned + Default + 'static,
    Resp: Serialize + 'static,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, RpcError>> + Send + 'static,
{
    let processing = Processing::start(&incoming.pattern);
    let (request, scope, span) = match prepare::<Req>(incoming) {
        Ok(prepared) => prepared,
        Err(e) => return refused(processing, e),
    };
    let fut =
        AssertUnwindSafe(scope::run(scope.clone(), handler(request)).instrument(span.clone()))
            .catch_unwind();
    Box::pin(futures_util::stream::once(async move {
        let item = match fut.await {
            Ok(Ok(response)) => reply(response, &scope),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(panicked(&span)),
        };
        processing.done(item.as_ref().map(drop));
        item
    }))
}

/// The error reply to a message that never reached its handler.
fn refused(processing: Processing, e: RpcError) -> RawReplies {
    processing.done(Err(&e));
    once(Err(e))
}

/// Server streaming: decodes the request, runs `handler`, encodes each item it streams.
pub fn server_streaming<Req, Resp, F, Fut>(incoming: Incoming, handler: F) -> RawReplies
where
    Req: DeserializeOwned + Default + 'static,
    Resp: Serialize + 'static,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<ResponseStream<Resp>>, RpcError>> + Send + 'static,
{
    let processing = Processing::start(&incoming.pattern);
    let (request, scope, span) = match prepare::<Req>(incoming) {
        Ok(prepared) => prepared,
        Err(e) => return refused(processing, e),
    };
    let fut =
        AssertUnwindSafe(scope::run(scope.clone(), handler(request)).instrument(span.clone()))
            .catch_unwind();
    let stream = async move {
        match fut.await {
            Ok(Ok(response)) => {
                let (headers, items) = response.into_parts();
                let headers = reply_headers(&headers, &scope);
                let items = Scoped {
                    scope,
                    stream: Box::pin(items.instrument_each(span.clone())),
                };
                AssertUnwindSafe(items.map(move |item| {
                    let payload = json::encode(&item?)?;
                    Ok(Reply {
                        payload,
                        headers: headers.clone(),
                    })
                }))
                .catch_unwind()
                .map(move |r| r.unwrap_or_else(|_| Err(panicked(&span))))
                .boxed()
            }
            Ok(Err(e)) => futures_util::stream::once(async move { Err(e) }).boxed(),
            Err(_) => {
                let e = panicked(&span);
                futures_util::stream::once(async move { Err(e) }).boxed()
            }
        }
    }
    .flatten_stream();
    // An error ends the stream: nothing after it reaches the caller.
    Box::pin(stop_after_error(stream, processing))
}

/// Event: decodes the event and runs `handler`; the stream yields nothing, or the error
/// to log.
pub fn event<Ev, F, Fut>(incoming: Incoming, handler: F) -> RawReplies
where
    Ev: DeserializeOwned + Default + 'static,
    F: FnOnce(Request<Ev>) -> Fut,
    Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
{
    let processing = Processing::start(&incoming.pattern);
    if incoming.is_request() {
        return refused(processing, request_to_event(&incoming));
    }
    let (event, scope, span) = match prepare::<Ev>(incoming) {
        Ok(prepared) => prepared,
        Err(e) => return refused(processing, e),
    };
    let fut =
        AssertUnwindSafe(scope::run(scope, handler(event)).instrument(span.clone())).catch_unwind();
    Box::pin(
        async move {
            let failure = match fut.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(panicked(&span)),
            };
            processing.done(failure.as_ref().map_or(Ok(()), Err));
            failure.map(Err)
        }
        .into_stream()
        .filter_map(|x| async move { x }),
    )
}

/// The refusal of a request sent to an event pattern. NestJS would run the event handler and
/// reply with nothing, which its caller reads as a default value; here the handler is not run
/// and the caller gets `UNIMPLEMENTED`.
fn request_to_event(incoming: &Incoming) -> RpcError {
    tracing::warn!(
        pattern = &*incoming.pattern,
        correlation_id = incoming.correlation_id.as_deref(),
        "request to an event pattern refused; the handler was not run"
    );
    RpcError::new(
        crate::codes::UNIMPLEMENTED,
        format!(
            "{} is an event pattern: it takes events (emit), not requests (send)",
            incoming.pattern
        ),
    )
}

/// The reply to a pattern the service does not handle (NestJS's wording).
pub fn no_handler(incoming: Incoming) -> RawReplies {
    tracing::warn!(pattern = &*incoming.pattern, "no handler for pattern");
    once(Err(RpcError::no_handler()))
}

/// Polls each item of a stream inside a span.
trait InstrumentEach: futures_core::Stream + Sized {
    fn instrument_each(self, span: tracing::Span) -> InSpan<Self> {
        InSpan { span, stream: self }
    }
}

impl<S: futures_core::Stream> InstrumentEach for S {}

struct InSpan<S> {
    span: tracing::Span,
    stream: S,
}

impl<S: futures_core::Stream + Unpin> futures_core::Stream for InSpan<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        std::pin::Pin::new(&mut this.stream).poll_next(cx)
    }
}

/// Ends the stream after its first error, and records the processing when it ends.
fn stop_after_error(
    stream: impl futures_core::Stream<Item = Item> + Send + 'static,
    processing: Processing,
) -> impl futures_core::Stream<Item = Item> + Send + 'static {
    let state = (Box::pin(stream), Some(processing));
    futures_util::stream::unfold(state, |(mut s, mut processing)| async move {
        let current = processing.take()?;
        match s.next().await {
            None => {
                current.done(Ok(()));
                None
            }
            Some(Err(e)) => {
                current.done(Err(&e));
                Some((Err(e), (s, None)))
            }
            Some(item) => Some((item, (s, Some(current)))),
        }
    })
}
