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

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Reply, RpcError};

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
struct Markers(HashMap<String, Instant>);

impl Markers {
    /// Marks `key` unless a live marker holds it; whether it did.
    fn try_mark(&mut self, key: &str, lease: Duration) -> bool {
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

    fn clear(&mut self, key: &str) {
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

/// One line of a [`FileDedup`] file.
#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    replies: Vec<StoredReply>,
    /// When it was stored (Unix ms); lines of older versions have none and count as stored
    /// when the file is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum StoredReply {
    /// A reply without headers: its base64 payload.
    Ok(String),
    /// A reply with headers: base64 payload, then (name, base64 value) pairs.
    WithHeaders(String, Vec<(String, String)>),
    Err(RpcError),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: String) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

impl Line {
    fn new(key: &str, replies: &StoredReplies, at: SystemTime) -> Line {
        let replies = replies
            .iter()
            .map(|r| match r {
                Ok(reply) if reply.headers.is_empty() => StoredReply::Ok(b64(&reply.payload)),
                Ok(reply) => StoredReply::WithHeaders(
                    b64(&reply.payload),
                    reply
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_owned(), b64(v)))
                        .collect(),
                ),
                Err(e) => StoredReply::Err(e.clone()),
            })
            .collect();
        Line {
            key: key.to_owned(),
            replies,
            at: Some(unix_ms(at)),
        }
    }

    fn replies(self) -> StoredReplies {
        self.replies
            .into_iter()
            .map(|r| match r {
                StoredReply::Ok(payload) => Ok(Reply::from(unb64(payload))),
                StoredReply::WithHeaders(payload, headers) => Ok(Reply {
                    payload: unb64(payload),
                    headers: headers.into_iter().map(|(k, v)| (k, unb64(v))).collect(),
                }),
                StoredReply::Err(e) => Err(e),
            })
            .collect()
    }

    fn text(&self) -> String {
        let mut text = serde_json::to_string(self).expect("dedup line serializes");
        text.push('\n');
        text
    }
}

/// How long [`FileDedup::open`] remembers a request: far longer than any request stays
/// uncommitted (and so can be redelivered), short enough for the file to stay small.
pub const FILE_DEDUP_TTL: Duration = Duration::from_secs(24 * 3600);

/// A durable store: an append-only file of JSON lines (synced on every write), loaded when
/// opened, so it covers redeliveries after a crash or `kill -9`. Meant for one server process
/// per file. Entries expire after their TTL ([`FILE_DEDUP_TTL`] by default); the file is
/// compacted (rewritten with the live entries, then renamed over the old one) when it holds
/// more than twice as many lines as live entries, so it does not grow without bound. In-progress
/// markers live in memory: they catch concurrent duplicates within the process.
#[derive(Debug)]
pub struct FileDedup {
    path: PathBuf,
    ttl: Duration,
    state: Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    file: File,
    entries: HashMap<String, (SystemTime, StoredReplies)>,
    /// Lines in the file (live or not).
    lines: usize,
    markers: Markers,
    /// When expired entries were last dropped (a full pass, at most every few seconds).
    swept: Instant,
}

/// Fewest lines before a compaction is worth it.
const COMPACT_AT_LEAST: usize = 1024;
/// Longest time between two passes that drop expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl FileDedup {
    /// Opens (or creates) the store at `path` with the default TTL ([`FILE_DEDUP_TTL`]),
    /// loading what earlier runs stored. A torn last line (a crash mid-write) is skipped.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_with_ttl(path, FILE_DEDUP_TTL)
    }

    /// Like [`FileDedup::open`], remembering each request for `ttl`.
    pub fn open_with_ttl(path: impl AsRef<Path>, ttl: Duration) -> std::io::Result<Self> {
        let path = path.as_ref().to_owned();
        let now = SystemTime::now();
        let mut entries = HashMap::new();
        let mut lines = 0;
        if let Ok(existing) = File::open(&path) {
            for line in BufReader::new(existing).lines() {
                lines += 1;
                let Ok(line) = serde_json::from_str::<Line>(&line?) else {
                    continue;
                };
                let at = line
                    .at
                    .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
                    .unwrap_or(now);
                if now.duration_since(at).unwrap_or_default() <= ttl {
                    entries.insert(line.key.clone(), (at, line.replies()));
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // End a torn last line so the next entry starts on its own line.
        let text = std::fs::read(&path)?;
        if text.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n")?;
        }
        let store = FileDedup {
            path,
            ttl,
            state: Mutex::new(FileState {
                file,
                entries,
                lines,
                markers: Markers::default(),
                swept: Instant::now(),
            }),
        };
        store.compact_if_due(&mut store.lock())?;
        Ok(store)
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many requests it remembers.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines in the file now (compaction keeps this under about twice [`Self::len`]).
    pub fn lines(&self) -> usize {
        self.lock().lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, at: SystemTime) -> bool {
        SystemTime::now().duration_since(at).unwrap_or_default() <= self.ttl
    }

    /// The live replies of `key`.
    fn find(&self, state: &FileState, key: &str) -> Option<StoredReplies> {
        let (at, replies) = state.entries.get(key)?;
        self.live(*at).then(|| replies.clone())
    }

    /// Drops expired entries: a full pass at most every few seconds (or when `now`).
    fn sweep(&self, state: &mut FileState, now: bool) {
        if !now && state.swept.elapsed() < SWEEP_EVERY.min(self.ttl) {
            return;
        }
        state.swept = Instant::now();
        let ttl = self.ttl;
        let at_now = SystemTime::now();
        state
            .entries
            .retain(|_, (at, _)| at_now.duration_since(*at).unwrap_or_default() <= ttl);
    }

    /// Rewrites the file with the live entries when dead lines outnumber them.
    fn compact_if_due(&self, state: &mut FileState) -> std::io::Result<()> {
        if state.lines < COMPACT_AT_LEAST || state.lines <= 2 * state.entries.len() {
            self.sweep(state, false);
        } else {
            self.sweep(state, true);
        }
        if state.lines < COMPACT_AT_LEAST || state.lines <= 2 * state.entries.len() {
            return Ok(());
        }
        let tmp = self.path.with_extension("compacting");
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for (key, (at, replies)) in &state.entries {
                out.write_all(Line::new(key, replies, *at).text().as_bytes())?;
            }
            out.into_inner()?.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        state.file = OpenOptions::new().append(true).open(&self.path)?;
        state.lines = state.entries.len();
        tracing::debug!(path = %self.path.display(), entries = state.lines, "dedup store compacted");
        Ok(())
    }
}

impl DedupStore for FileDedup {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        self.find(&self.lock(), key)
    }

    fn put(&self, key: &str, replies: &StoredReplies) {
        let now = SystemTime::now();
        let text = Line::new(key, replies, now).text();
        let mut state = self.lock();
        // A failed write only weakens de-duplication; the reply still goes out.
        match state
            .file
            .write_all(text.as_bytes())
            .and_then(|()| state.file.sync_data())
        {
            Ok(()) => state.lines += 1,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "dedup store write failed")
            }
        }
        state.entries.insert(key.to_owned(), (now, replies.clone()));
        state.markers.clear(key);
        if let Err(e) = self.compact_if_due(&mut state) {
            tracing::warn!(path = %self.path.display(), error = %e, "dedup store compaction failed");
        }
    }

    fn claim(&self, key: &str, lease: Duration) -> Claim {
        let mut state = self.lock();
        if let Some(replies) = self.find(&state, key) {
            return Claim::Done(replies);
        }
        if state.markers.try_mark(key, lease) {
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

    #[test]
    fn file_store_survives_reopening_and_torn_lines() {
        let dir = std::env::temp_dir().join(format!("axion-dedup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dedup.jsonl");
        let _ = std::fs::remove_file(&path);
        {
            let store = FileDedup::open(&path).unwrap();
            store.put(
                "p/1",
                &vec![
                    Ok(Reply::from(b"{\"a\":1}".to_vec())),
                    Ok(Reply::from(vec![0, 255])),
                ],
            );
            store.put("p/2", &vec![Err(RpcError::already_exists("dup"))]);
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"key\":\"p/3\",\"repl")
            .unwrap();
        let store = FileDedup::open(&path).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(
            store.get("p/1"),
            Some(vec![
                Ok(Reply::from(b"{\"a\":1}".to_vec())),
                Ok(Reply::from(vec![0, 255]))
            ])
        );
        assert_eq!(
            store.get("p/2"),
            Some(vec![Err(RpcError::already_exists("dup"))])
        );
        assert!(store.get("p/3").is_none());
        store.put("p/4", &vec![Ok(Reply::from(b"4".to_vec()))]);
        let with_headers = Reply {
            payload: b"5".to_vec(),
            headers: [("x-a", &b"1"[..]), ("x-b", &[0xff][..])]
                .into_iter()
                .collect(),
        };
        store.put("p/5", &vec![Ok(with_headers.clone())]);
        drop(store);
        let store = FileDedup::open(&path).unwrap();
        assert_eq!(store.get("p/4"), Some(vec![Ok(Reply::from(b"4".to_vec()))]));
        assert_eq!(store.get("p/5"), Some(vec![Ok(with_headers)]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn claims_until_put_or_release(store: &dyn DedupStore) {
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
    fn both_stores_mark_requests_in_progress() {
        claims_until_put_or_release(&MemoryDedup::new(10, Duration::from_secs(60)));
        let dir = tempdir("claims");
        claims_until_put_or_release(&FileDedup::open(dir.join("d.jsonl")).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_store_expires_entries_and_compacts_its_file() {
        let dir = tempdir("ttl");
        let path = dir.join("d.jsonl");
        let store = FileDedup::open_with_ttl(&path, Duration::from_millis(100)).unwrap();
        store.put("p/old", &vec![Ok(Reply::from(b"1".to_vec()))]);
        std::thread::sleep(Duration::from_millis(150));
        assert!(store.get("p/old").is_none(), "expired");
        drop(store);
        assert!(
            FileDedup::open_with_ttl(&path, Duration::from_millis(100))
                .unwrap()
                .get("p/old")
                .is_none(),
            "expired entries are not loaded again"
        );

        let path = dir.join("compacted.jsonl");
        let store = FileDedup::open(&path).unwrap();
        for n in 0..(COMPACT_AT_LEAST + 100) {
            store.put(
                &format!("p/{}", n % 10),
                &vec![Ok(Reply::from(n.to_string().into_bytes()))],
            );
        }
        assert_eq!(store.len(), 10);
        assert!(
            store.lines() <= 2 * COMPACT_AT_LEAST,
            "{} lines",
            store.lines()
        );
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, store.lines(), "the count is the file's");
        drop(store);
        let again = FileDedup::open(&path).unwrap();
        let last = COMPACT_AT_LEAST + 99;
        assert_eq!(
            again.get(&format!("p/{}", last % 10)),
            Some(vec![Ok(Reply::from(last.to_string().into_bytes()))]),
            "the newest value of each key survives compaction"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("axion-dedup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
