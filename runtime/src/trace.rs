//! W3C trace context on the wire (`traceparent`, `tracestate`), read and written by
//! OpenTelemetry's `TraceContextPropagator`.
//!
//! Every message a server processes gets a span context: a child of the one it arrived with
//! (same trace id, a new span id, the parent's flags and state) or the root of a new trace.
//! Replies, events and calls made while handling it carry that context as their parent, the
//! header replaced, never appended. With the `otel` feature and a `tracing-opentelemetry`
//! layer installed, the processing span is exported and its ids are the ones on the wire;
//! without either, the ids are made here and only travel (propagation still works end to end).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};

use crate::metadata::Metadata;

/// The W3C header naming the parent span.
pub(crate) const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor state.
pub(crate) const TRACESTATE: &str = "tracestate";

/// Room a message's headers need for the trace context: `traceparent` and its 55-byte value
/// (a `tracestate` is rare and may reallocate).
pub(crate) const HEADER_ROOM: (usize, usize) = (1, TRACEPARENT.len() + 55);

/// [`HEADER_ROOM`] while telemetry is on, else none.
pub(crate) fn room() -> (usize, usize) {
    if crate::telemetry::enabled() {
        HEADER_ROOM
    } else {
        (0, 0)
    }
}

struct Extract<'a>(&'a Metadata);

/// W3C's limit for `tracestate` (32 entries of at most 256 bytes fit in about this much):
/// a longer one is dropped instead of parsed, and so never copied onward.
const MAX_TRACESTATE: usize = 512;

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get_str(key)?;
        (key != TRACESTATE || value.len() <= MAX_TRACESTATE).then_some(value)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

struct Inject<'a>(&'a mut Metadata);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            self.0.remove(key);
        } else {
            self.0.insert(key, value);
        }
    }
}

/// The remote parent a message names, if its `traceparent` is valid.
pub(crate) fn extract(headers: &Metadata) -> Option<SpanContext> {
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&Extract(headers));
    let parent = cx.span().span_context().clone();
    parent.is_valid().then_some(parent)
}

/// A new span's context: a child of `parent`, or the root of a new (sampled) trace.
pub(crate) fn child_of(parent: Option<&SpanContext>) -> SpanContext {
    let ids = RandomIdGenerator::default();
    match parent {
        Some(p) => SpanContext::new(
            p.trace_id(),
            ids.new_span_id(),
            p.trace_flags(),
            false,
            p.trace_state().clone(),
        ),
        None => SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
    }
}

/// Writes `span` as the parent of the message `headers` belong to, replacing any
/// `traceparent`/`tracestate` there.
pub(crate) fn inject(span: &SpanContext, headers: &mut Metadata) {
    let cx = opentelemetry::Context::new().with_remote_span_context(span.clone());
    let mut injector = Inject(headers);
    TraceContextPropagator::new().inject_context(&cx, &mut injector);
    if span.trace_state().header().is_empty() {
        injector.set(TRACESTATE, String::new());
    }
}

/// The context of the span processing a message: the `otel` layer's span when one records
/// it, else one made here as a child of `parent`.
pub(crate) fn processing(span: &tracing::Span, parent: Option<&SpanContext>) -> SpanContext {
    // A disabled span (no subscriber wants it) has no `otel` layer to tell.
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        if let Some(parent) = parent {
            set_parent(span, parent.clone());
        }
        if let Some(own) = recorded(span) {
            return own;
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = span;
    child_of(parent)
}

/// The span context the `otel` layer records for `span`, if a layer records it.
#[cfg(feature = "otel")]
fn recorded(span: &tracing::Span) -> Option<SpanContext> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = span.context().span().span_context().clone();
    cx.is_valid().then_some(cx)
}

/// Makes the remote `parent` the parent of `span` in the `otel` layer.
#[cfg(feature = "otel")]
fn set_parent(span: &tracing::Span, parent: SpanContext) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

/// The span of one send (a request until its reply, an event until the bus has it), named
/// after OpenTelemetry's messaging conventions (`send <pattern>`, kind producer). With the
/// `otel` layer it is exported, a child of the current span or of the `traceparent` given in
/// the options, and it is the parent written into the message; without telemetry it is a
/// disabled span.
pub(crate) fn send_span(pattern: &str, options: &Metadata) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "send",
        "otel.name" = format_args!("send {pattern}"),
        "otel.kind" = "producer",
        "messaging.system" = "kafka",
        "messaging.operation.type" = "send",
        "messaging.destination.name" = pattern,
    );
    // Inside a handler the handler's span is the parent, whatever the options carry.
    #[cfg(feature = "otel")]
    if crate::scope::current().is_none() {
        if let Some(explicit) = extract(options) {
            set_parent(&span, explicit);
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = options;
    span
}

/// The parent for a message sent now: the current `otel` span (the send span), else the
/// handler's processing span, else the `traceparent` the caller passed in its options (only
/// outside a handler: forwarding a request's headers must not make its caller the parent),
/// else the root of a new trace.
pub(crate) fn outgoing(options: &Metadata, handler: Option<&SpanContext>) -> SpanContext {
    #[cfg(feature = "otel")]
    if let Some(current) = recorded(&tracing::Span::current()) {
        return current;
    }
    if let Some(span) = handler {
        return span.clone();
    }
    extract(options).unwrap_or_else(|| child_of(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_child_keeps_the_trace_and_the_header_is_replaced_not_appended() {
        let mut headers = Metadata::new();
        headers.append(TRACEPARENT, PARENT);
        headers.append(TRACESTATE, "congo=t61rcWkgMzE");
        let parent = extract(&headers).expect("valid");
        assert_eq!(
            parent.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let child = child_of(Some(&parent));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.is_sampled());

        let mut out = headers.clone();
        out.append(
            TRACEPARENT,
            "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
        );
        inject(&child, &mut out);
        let values: Vec<&[u8]> = out.get_all(TRACEPARENT).collect();
        assert_eq!(values.len(), 1, "{out:?}");
        let expected = format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", child.span_id());
        assert_eq!(out.get_str(TRACEPARENT), Some(expected.as_str()));
        assert_eq!(out.get_str(TRACESTATE), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn an_oversized_tracestate_is_dropped_and_the_parent_kept() {
        let huge = (0..200)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let headers: Metadata = [(TRACEPARENT, PARENT), (TRACESTATE, huge.as_str())]
            .into_iter()
            .collect();
        let parent = extract(&headers).expect("the parent is still valid");
        assert_eq!(parent.trace_state().header(), "");
    }

    #[test]
    fn invalid_or_absent_parents_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            let headers: Metadata = [(TRACEPARENT, bad)].into_iter().collect();
            assert!(extract(&headers).is_none(), "{bad:?}");
        }
        assert!(extract(&Metadata::new()).is_none());
        let root = child_of(None);
        assert!(root.is_valid() && root.is_sampled());
        let mut out: Metadata = [(TRACESTATE, "stale=1")].into_iter().collect();
        inject(&root, &mut out);
        assert!(
            !out.contains_key(TRACESTATE),
            "no state: the stale one goes"
        );
        assert_eq!(out.get_all(TRACEPARENT).count(), 1);
    }
}
