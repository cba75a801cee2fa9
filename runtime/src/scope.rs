//! What a handler's own calls inherit from the message being handled: its deadline. Carried in
//! a task-local around the handler (and each poll of its reply stream), so a generated client
//! called anywhere in the handler's task sees it. Work moved to another task with
//! `tokio::spawn` starts without it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

tokio::task_local! {
    static CURRENT: Scope;
}

/// The inherited part of a message's context.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Scope {
    pub(crate) deadline: Option<SystemTime>,
}

/// The scope of the handler running on this task, if any.
pub(crate) fn current() -> Option<Scope> {
    CURRENT.try_with(|s| *s).ok()
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
        let scope = self.scope;
        CURRENT.sync_scope(scope, || self.stream.as_mut().poll_next(cx))
    }
}
