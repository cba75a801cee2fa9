//! Handlers that block their thread (`std::thread::sleep`, a synchronous client) instead of
//! awaiting: `tokio::time::timeout` cannot stop them, since the timer only fires when the
//! handler yields. They are made visible instead: every poll of a handler is marked in a slot
//! of the worker thread running it, and the consumer thread reports a poll that has not
//! returned within the handler timeout (a WARN naming the record, and a metric). The cure is
//! the handler's: `tokio::task::spawn_blocking` for blocking work.
//!
//! One slot per worker thread (no allocation per record); a slot is written by its thread
//! only and read by consumer threads, with a sequence check against torn reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Which record a poll is for: (server, topic index, partition, offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Who {
    pub server: u64,
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
}

/// The poll in progress on one worker thread.
#[derive(Default)]
struct Slot {
    /// Milliseconds since [`epoch`] (plus one) when the poll began; 0 while none runs.
    since: AtomicU64,
    server: AtomicU64,
    topic: AtomicU64,
    partition: AtomicI32,
    offset: AtomicI64,
    /// The current poll was reported already.
    reported: AtomicBool,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn slots() -> &'static Mutex<Vec<Arc<Slot>>> {
    static SLOTS: OnceLock<Mutex<Vec<Arc<Slot>>>> = OnceLock::new();
    SLOTS.get_or_init(Mutex::default)
}

thread_local! {
    static SLOT: Arc<Slot> = {
        let slot = Arc::new(Slot::default());
        slots().lock().unwrap_or_else(|e| e.into_inner()).push(slot.clone());
        slot
    };
}

impl Slot {
    fn enter(&self, who: Who) {
        // `since` last, with Release: a reader that sees it (Acquire) sees the record's ids.
        self.since.store(0, Ordering::Relaxed);
        self.server.store(who.server, Ordering::Relaxed);
        self.topic.store(who.topic as u64, Ordering::Relaxed);
        self.partition.store(who.partition, Ordering::Relaxed);
        self.offset.store(who.offset, Ordering::Relaxed);
        self.reported.store(false, Ordering::Relaxed);
        let now = epoch().elapsed().as_millis() as u64 + 1;
        self.since.store(now, Ordering::Release);
    }

    fn leave(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// The poll in progress and how long it runs, read consistently (or `None`).
    fn read(&self) -> Option<(Who, Duration)> {
        let since = self.since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let who = Who {
            server: self.server.load(Ordering::Relaxed),
            topic: self.topic.load(Ordering::Relaxed) as usize,
            partition: self.partition.load(Ordering::Relaxed),
            offset: self.offset.load(Ordering::Relaxed),
        };
        // A poll that ended or began meanwhile: skip it this time.
        std::sync::atomic::fence(Ordering::Acquire);
        if self.since.load(Ordering::Relaxed) != since {
            return None;
        }
        let running = (epoch().elapsed().as_millis() as u64 + 1).saturating_sub(since);
        Some((who, Duration::from_millis(running)))
    }
}

/// A handler's future or stream step, with its polls marked in the thread's slot.
pub(super) struct Watched<F> {
    inner: F,
    who: Who,
}

impl<F> Watched<F> {
    pub(super) fn new(inner: F, who: Who) -> Self {
        Watched { inner, who }
    }
}

impl<F: Future + Unpin> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let who = self.who;
        SLOT.with(|slot| {
            slot.enter(who);
            /// Leaves the slot however the poll ends (a panic unwinds through here).
            struct Leave<'a>(&'a Slot);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.leave();
                }
            }
            let _leave = Leave(slot);
            Pin::new(&mut self.inner).poll(cx)
        })
    }
}

/// Polls of `server`'s handlers that have run for longer than `limit` without returning,
/// each reported once: (topic index, partition, offset, how long so far).
pub(super) fn blocked(server: u64, limit: Duration) -> Vec<(usize, i32, i64, Duration)> {
    let slots = slots().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    for slot in slots.iter() {
        let Some((who, running)) = slot.read() else {
            continue;
        };
        if who.server == server && running > limit && !slot.reported.swap(true, Ordering::SeqCst) {
            out.push((who.topic, who.partition, who.offset, running));
        }
    }
    out
}

/// A number for each server, so that slots tell their servers apart.
pub(super) fn server_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_that_does_not_return_is_reported_once_with_its_record() {
        let server = server_id();
        let who = Who {
            server,
            topic: 1,
            partition: 4,
            offset: 77,
        };
        let blocking = Watched::new(
            Box::pin(async {
                std::thread::sleep(Duration::from_millis(400));
            }),
            who,
        );
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(blocking)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            seen = blocked(server, Duration::from_millis(100));
        }
        assert_eq!(seen.len(), 1, "reported while it blocks");
        assert_eq!((seen[0].0, seen[0].1, seen[0].2), (1, 4, 77));
        assert!(
            blocked(server, Duration::from_millis(100)).is_empty(),
            "once"
        );
        thread.join().unwrap();
        assert!(
            blocked(server, Duration::ZERO).is_empty(),
            "over: nothing runs"
        );
        assert!(
            blocked(server_id(), Duration::ZERO).is_empty(),
            "another server's"
        );
    }
}
