//! De-duplication on the serving side: claiming a request in the [`DedupStore`], waiting out a
//! concurrent run of the same request, and storing the replies. Every store call runs on a
//! blocking thread: stores do file or database I/O.

use std::sync::Arc;
use std::time::Duration;

use super::super::dedup::{Claim, DedupStore, StoredReplies};
use super::Shared;

/// Runs a store call on a blocking thread; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "the dedup store panicked; going on without it for this request");
            None
        }
    }
}

/// How long a claim may hold a request: every attempt at the handler timeout, and the drain.
fn lease(shared: &Shared) -> Duration {
    let s = &shared.settings;
    s.handler_timeout
        .saturating_mul(s.retry.max_attempts.max(1))
        .saturating_add(s.drain_timeout)
}

/// The outcome of claiming a request.
pub(super) enum Claimed {
    /// Handled before: re-send these.
    Done(StoredReplies),
    /// Ours to run.
    Run(ClaimGuard),
}

/// Claims `key`, waiting (polling, with backoff) while another run holds it.
pub(super) async fn claim(shared: &Shared, store: &Arc<dyn DedupStore>, key: String) -> Claimed {
    let lease = lease(shared);
    let mut wait = Duration::from_millis(20);
    let mut logged = false;
    loop {
        let (s, k) = (store.clone(), key.clone());
        match blocking(move || s.claim(&k, lease)).await {
            Some(Claim::Done(replies)) => return Claimed::Done(replies),
            Some(Claim::InProgress) => {
                if !logged {
                    logged = true;
                    tracing::info!(key = %key, "duplicate of a request in progress: waiting for its replies");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Some(Claim::Run) | None => {
                return Claimed::Run(ClaimGuard {
                    store: store.clone(),
                    key,
                    stored: false,
                })
            }
        }
    }
}

/// A claimed request: its marker is dropped unless its replies were stored.
pub(super) struct ClaimGuard {
    store: Arc<dyn DedupStore>,
    key: String,
    stored: bool,
}

impl ClaimGuard {
    /// Stores the run's replies (which also ends the claim).
    pub(super) async fn store(&mut self, replies: StoredReplies) {
        let (s, k) = (self.store.clone(), self.key.clone());
        blocking(move || s.put(&k, &replies)).await;
        self.stored = true;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.stored {
            return;
        }
        // Cancelled (revocation, shutdown) or dropped before replying: free the key for the
        // next run. Off the async worker; after the runtime is gone, the lease frees it.
        let (s, k) = (self.store.clone(), std::mem::take(&mut self.key));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || s.release(&k));
        }
    }
}
