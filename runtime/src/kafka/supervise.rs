//! Watching the loops a transport cannot live without (a server's consumer thread, a client's
//! reply reader): if one ends for any reason other than a requested stop, the failure is
//! logged at ERROR, kept, and reported — by `/health`, [`ServerHandle`](super::ServerHandle)
//! and every later call — never a live process that silently stops serving.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use tokio::sync::watch;

use crate::RpcError;

/// The failure of a supervised loop, once it failed; cheap to clone, shared by its reporters.
#[derive(Clone, Debug)]
pub(crate) struct Supervision {
    what: &'static str,
    failed: watch::Sender<Option<Arc<str>>>,
}

impl Supervision {
    /// Supervision of `what` (for messages: "the consumer thread", "the reply reader").
    pub(crate) fn new(what: &'static str) -> Self {
        Supervision {
            what,
            failed: watch::channel(None).0,
        }
    }

    /// Runs `body` to its end on this thread. A panic, or a return while `stopping()` is
    /// false, is recorded as the failure.
    pub(crate) fn run(&self, stopping: impl Fn() -> bool, body: impl FnOnce()) {
        let ended = std::panic::catch_unwind(AssertUnwindSafe(body));
        self.ended(ended.map_err(panic_message), stopping());
    }

    /// [`Supervision::run`] for a future.
    pub(crate) async fn run_async(
        &self,
        stopping: impl Fn() -> bool,
        body: impl Future<Output = ()>,
    ) {
        let ended = AssertUnwindSafe(body).catch_unwind().await;
        self.ended(ended.map_err(panic_message), stopping());
    }

    fn ended(&self, ended: Result<(), String>, stopping: bool) {
        let why = match ended {
            Err(panic) => format!("{} panicked: {panic}", self.what),
            Ok(()) if stopping => return,
            Ok(()) => format!("{} ended without being asked to", self.what),
        };
        tracing::error!(error = %why, "{} stopped; this process no longer serves: replace it", self.what);
        self.failed.send_replace(Some(Arc::from(why)));
    }

    /// The failure, if the loop failed.
    pub(crate) fn failure(&self) -> Option<RpcError> {
        self.failed.borrow().as_deref().map(unavailable)
    }

    /// Resolves with the failure once the loop failed (never, while it runs).
    pub(crate) async fn failed(&self) -> RpcError {
        let mut rx = self.failed.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            // The sender lives in `self`: not reached while `self` is borrowed.
            Err(_) => None,
        };
        match why {
            Some(why) => unavailable(&why),
            None => std::future::pending().await,
        }
    }
}

fn unavailable(why: &str) -> RpcError {
    RpcError::unavailable(why.to_owned())
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_or_an_unasked_end_is_the_failure_a_requested_stop_is_not() {
        let s = Supervision::new("the loop");
        s.run(|| true, || {});
        assert!(s.failure().is_none(), "asked to stop");
        s.run(|| false, || {});
        let e = s.failure().expect("ended on its own");
        assert!(
            e.message.contains("the loop ended without being asked to"),
            "{e}"
        );
        let s = Supervision::new("the loop");
        s.run(|| true, || panic!("bytes {}", 7));
        let e = s
            .failure()
            .expect("a panic is a failure even while stopping");
        assert!(e.message.contains("the loop panicked: bytes 7"), "{e}");
        assert!(e.is(crate::codes::UNAVAILABLE));
    }

    #[tokio::test]
    async fn a_panicking_future_resolves_failed() {
        let s = Supervision::new("the reader");
        let watcher = {
            let s = s.clone();
            tokio::spawn(async move { s.failed().await })
        };
        s.run_async(|| false, async { panic!("utf-8") }).await;
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
            .await
            .expect("resolved")
            .expect("task");
        assert!(e.message.contains("the reader panicked: utf-8"), "{e}");
    }
}
