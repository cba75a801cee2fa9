//! Opt-in de-duplication of requests by correlation id, for handlers that are not idempotent.
//!
//! The server is at-least-once: a message whose handler ran but whose offset was not committed
//! yet (a crash, a kill, a rebalance mid-handler) is delivered again, and a caller may send the
//! same correlation id twice. With a [`DedupStore`]
//! ([`KafkaServer::start_with_dedup`](super::KafkaServer::start_with_dedup)) the server first
//! *claims* `<pattern>/<correlation id>`:
//!
//! - stored replies there: they are re-sent and the handler is not called;
//! - another run of it in progress (its marker younger than its lease): the duplicate waits for
//!   that run's replies (or for the lease to end) instead of running the handler concurrently;
//! - neither: it is marked in progress, the handler runs, and its replies are stored before the
//!   last of them is sent (a unary reply before it goes out; a stream's items go out as they
//!   come and the whole stream is stored before its end). A run that is cancelled or fails before
//!   replying drops its marker.
//!
//! Every store call runs on a blocking thread (`spawn_blocking`), never on an async worker: a
//! store may do file or database I/O.
//!
//! What it covers, exactly: duplicates that arrive after the first run stored its replies, and
//! duplicates that arrive while it runs (in the same process for [`MemoryDedup`] and
//! [`FileDedup`], whose markers live in memory; across processes only for a store whose
//! markers are shared, such as your own on the service's database). What it cannot cover: a
//! crash after the handler's side effects but before its replies were stored (for a stream, a
//! crash before its end) runs the handler again on redelivery. [`MemoryDedup`] forgets
//! everything when the process dies; across a crash use a durable store ([`FileDedup`], or one
//! of your own).

mod file;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Reply, RpcError};

pub use file::{DedupLimits, FileDedup, FILE_DEDUP_TTL};

/// The replies of one finished request, in order; an `Err` is the last one.
pub type StoredReplies = Vec<Result<Reply, RpcError>>;

/// What a store says about a request the server is about to handle.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Neither handled nor in progress: it is now marked in progress (for the lease). Run the
    /// handler, then [`DedupStore::put`] its replies (or [`DedupStore::release`] the marker).
    Run,
    /// Another run holds a marker younger than its lease: wait, then claim again.
    InProgress,
    /// Handled before: its replies.
    Done(StoredReplies),
}

/// Where a server remembers the requests it handled and is handling. Implementations may
/// block (file or database I/O): the server calls them on a blocking thread.
pub trait DedupStore: Send + Sync + 'static {
    /// The replies stored under `key`, if it was handled (and not forgotten).
    fn get(&self, key: &str) -> Option<StoredReplies>;
    /// Remembers the replies of `key` (and drops its in-progress marker). Called after the
    /// handler finished, before the last reply is sent and the offset committed.
    fn put(&self, key: &str, replies: &StoredReplies);
    /// Atomically: `Done` if `key` is stored, else `InProgress` if another run marked it less
    /// than its lease ago, else marks it (for `lease`) and says `Run`. The default, for
    /// stores without markers, only reads: concurrent duplicates then both run.
    fn claim(&self, key: &str, lease: Duration) -> Claim {
        let _ = lease;
        match self.get(key) {
            Some(replies) => Claim::Done(replies),
            None => Claim::Run,
        }
    }
    /// Drops the in-progress marker of `key` without replies (its run was cancelled, or failed
    /// before replying). The default does nothing.
    fn release(&self, key: &str) {
        let _ = key;
    }
}

/// The key of a request: its pattern and correlation id.
pub(crate) fn key(pattern: &str, correlation_id: &str) -> String {
    format!("{pattern}/{correlation_id}")
}

/// In-progress markers: key → when its lease ends.
#[derive(Debug, Default)]
pub(super) struct Markers(HashMap<String, Instant>);

impl Markers {
    /// Marks `key` unless a live marker holds it; whether it did.
    pub(super) fn try_mark(&mut self, key: &str, lease: Duration) -> bool {
        let now = Instant::now();
        if self.0.get(key).is_some_and(|until| *until > now) {
            return false;
        }
        // Forget expired markers now and then, so abandoned ones do not pile up.
        if self.0.len() > 1024 {
            self.0.retain(|_, until| *until > now);
        }
        self.0.insert(key.to_owned(), now + lease);
        true
    }

    pub(super) fn clear(&mut self, key: &str) {
        self.0.remove(key);
    }
}

/// A bounded in-memory store: at most `capacity` entries, each kept for `ttl`; the oldest go
/// first. Lost with the process: it does not cover redeliveries after a crash.
#[derive(Debug)]
pub struct MemoryDedup {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<String, (Instant, StoredReplies)>,
    order: VecDeque<(Instant, String)>,
    markers: Markers,
}

impl Lru {
    fn evict(&mut self, capacity: usize, ttl: Duration) {
        let now = Instant::now();
        while let Some((at, key)) = self.order.front() {
            let expired = now.duration_since(*at) > ttl;
            if !expired && self.entries.len() <= capacity {
                break;
            }
            // Only drop the entry if this queue slot is its latest write.
            if self.entries.get(key).is_some_and(|(t, _)| t == at) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }
}

impl MemoryDedup {
    /// A store of at most `capacity` (≥ 1) requests, each remembered for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        MemoryDedup {
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// How many requests it remembers now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DedupStore for MemoryDedup {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        let mut lru = self.lock();
        lru.evict(self.capacity, self.ttl);
        lru.entries.get(key).map(|(_, r)| r.clone())
    }

    fn put(&self, key: &str, replies: &StoredReplies) {
        let mut lru = self.lock();
        let now = Instant::now();
        lru.entries.insert(key.to_owned(), (now, replies.clone()));
        lru.order.push_back((now, key.to_owned()));
        lru.markers.clear(key);
        lru.evict(self.capacity, self.ttl);
    }

    fn claim(&self, key: &str, lease: Duration) -> Claim {
        let mut lru = self.lock();
        lru.evict(self.capacity, self.ttl);
        if let Some((_, replies)) = lru.entries.get(key) {
            return Claim::Done(replies.clone());
        }
        if lru.markers.try_mark(key, lease) {
            Claim::Run
        } else {
            Claim::InProgress
        }
    }

    fn release(&self, key: &str) {
        self.lock().markers.clear(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_is_bounded_and_expires() {
        let store = MemoryDedup::new(2, Duration::from_secs(60));
        store.put("a", &vec![Ok(Reply::from(b"1".to_vec()))]);
        store.put("b", &vec![Err(RpcError::not_found("x"))]);
        store.put("c", &vec![]);
        assert_eq!(store.len(), 2);
        assert!(store.get("a").is_none(), "oldest evicted");
        assert_eq!(store.get("b"), Some(vec![Err(RpcError::not_found("x"))]));
        let short = MemoryDedup::new(10, Duration::from_millis(1));
        short.put("a", &vec![Ok(Reply::default())]);
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get("a").is_none(), "expired");
    }

    pub(super) fn claims_until_put_or_release(store: &dyn DedupStore) {
        let lease = Duration::from_secs(60);
        assert_eq!(store.claim("p/1", lease), Claim::Run);
        assert_eq!(
            store.claim("p/1", lease),
            Claim::InProgress,
            "a concurrent duplicate"
        );
        store.release("p/1");
        assert_eq!(
            store.claim("p/1", lease),
            Claim::Run,
            "released: runs again"
        );
        let replies = vec![Ok(Reply::from(b"1".to_vec()))];
        store.put("p/1", &replies);
        assert_eq!(store.claim("p/1", lease), Claim::Done(replies));
        // A marker whose lease ended (its run died) no longer holds the key.
        assert_eq!(store.claim("p/2", Duration::from_millis(1)), Claim::Run);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.claim("p/2", lease), Claim::Run);
    }

    #[test]
    fn the_memory_store_marks_requests_in_progress() {
        claims_until_put_or_release(&MemoryDedup::new(10, Duration::from_secs(60)));
    }
}
