//! What a handler's own calls inherit from the message being handled: its deadline and its
//! trace context. Carried in a task-local around the handler (and each poll of its reply
//! stream), so a generated client called anywhere in the handler's task sees it. Work moved to
//! another task with `tokio::spawn` starts without it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use opentelemetry::trace::SpanContext;

tokio::task_local! {
    static CURRENT: Scope;
}

/// The inherited part of a message's context (cloned without an allocation unless the trace
/// has a `tracestate`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub(crate) deadline: Option<SystemTime>,
    /// The processing span's context: the parent of what the handler sends.
    pub(crate) trace: Option<SpanContext>,
}

/// The scope of the handler running on this task, if any.
pub(crate) fn current() -> Option<Scope> {
    CURRENT.try_with(Scope::clone).ok()
}

/// Runs `fut` inside `scope`.
pub(crate) fn run<F: Future>(scope: Scope, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(scope, fut)
}

/// Polls `stream` inside `scope`.
pub(crate) struct Scoped<S> {
    pub(crate) scope: Scope,
    pub(crate) stream: Pin<Box<S>>,
}

impl<S: futures_core::Stream> futures_core::Stream for Scoped<S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let scope = self.scope.clone();
        CURRENT.sync_scope(scope, || self.stream.as_mut().poll_next(cx))
    }
}
