//! Opt-in de-duplication of requests by correlation id, for handlers that are not idempotent.
//!
//! The server is at-least-once: a message whose handler ran but whose offset was not committed
//! yet (a crash, a kill, a rebalance mid-handler) is delivered again. With a [`DedupStore`]
//! ([`KafkaServer::start_with_dedup`](super::KafkaServer::start_with_dedup)) the server stores
//! the replies of every finished request under `<pattern>/<correlation id>`; a redelivered
//! request found there gets the stored replies re-sent and its handler is not called again.
//!
//! What it cannot cover: a crash after the handler's side effects but before the replies were
//! stored (a window of microseconds) still runs the handler twice. [`MemoryDedup`] forgets
//! everything when the process dies, so it only covers redeliveries within one process (a
//! rebalance, a reconnect); across a crash use a durable store ([`FileDedup`], or your own
//! implementation on the service's database).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Reply, RpcError};

/// The replies of one finished request, in order; an `Err` is the last one.
pub type StoredReplies = Vec<Result<Reply, RpcError>>;

/// Where a server remembers the replies of finished requests.
pub trait DedupStore: Send + Sync + 'static {
    /// The replies stored under `key`, if it was handled (and not forgotten).
    fn get(&self, key: &str) -> Option<StoredReplies>;
    /// Remembers the replies of `key`. Called after the handler finished, before the replies
    /// are sent and the offset is committed.
    fn put(&self, key: &str, replies: &StoredReplies);
}

/// The key of a request: its pattern and correlation id.
pub(crate) fn key(pattern: &str, correlation_id: &str) -> String {
    format!("{pattern}/{correlation_id}")
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
        self.inner.lock().expect("dedup").entries.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DedupStore for MemoryDedup {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        let mut lru = self.inner.lock().expect("dedup");
        lru.evict(self.capacity, self.ttl);
        lru.entries.get(key).map(|(_, r)| r.clone())
    }

    fn put(&self, key: &str, replies: &StoredReplies) {
        let mut lru = self.inner.lock().expect("dedup");
        let now = Instant::now();
        lru.entries.insert(key.to_owned(), (now, replies.clone()));
        lru.order.push_back((now, key.to_owned()));
        lru.evict(self.capacity, self.ttl);
    }
}

/// One line of a [`FileDedup`] file.
#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    replies: Vec<StoredReply>,
}

#[derive(Serialize, Deserialize)]
enum StoredReply {
    /// A reply without headers: its base64 payload.
    Ok(String),
    /// A reply with headers: base64 payload, then (name, base64 value) pairs.
    WithHeaders(String, Vec<(String, String)>),
    Err(RpcError),
}

/// A durable store: an append-only file of JSON lines (synced on every write), loaded when
/// opened, so it covers redeliveries after a crash or `kill -9`. Meant for one server
/// process per file; it grows without bound — rotate it (start a new file) when the oldest
/// request can no longer be redelivered.
#[derive(Debug)]
pub struct FileDedup {
    path: PathBuf,
    file: Mutex<File>,
    entries: Mutex<HashMap<String, StoredReplies>>,
}

impl FileDedup {
    /// Opens (or creates) the store at `path`, loading what earlier runs stored. A torn last
    /// line (a crash mid-write) is skipped.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        use base64::Engine as _;
        let path = path.as_ref().to_owned();
        let mut entries = HashMap::new();
        if let Ok(existing) = File::open(&path) {
            for line in BufReader::new(existing).lines() {
                let Ok(line) = serde_json::from_str::<Line>(&line?) else {
                    continue;
                };
                let replies = line
                    .replies
                    .into_iter()
                    .map(|r| {
                        let bytes = |b64: String| {
                            base64::engine::general_purpose::STANDARD
                                .decode(b64)
                                .unwrap_or_default()
                        };
                        match r {
                            StoredReply::Ok(b64) => Ok(Reply::from(bytes(b64))),
                            StoredReply::WithHeaders(b64, headers) => Ok(Reply {
                                payload: bytes(b64),
                                headers: headers.into_iter().map(|(k, v)| (k, bytes(v))).collect(),
                            }),
                            StoredReply::Err(e) => Err(e),
                        }
                    })
                    .collect();
                entries.insert(line.key, replies);
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // End a torn last line so the next entry starts on its own line.
        let text = std::fs::read(&path)?;
        if text.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n")?;
        }
        Ok(FileDedup {
            path,
            file: Mutex::new(file),
            entries: Mutex::new(entries),
        })
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many requests it remembers.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("dedup").len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DedupStore for FileDedup {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        self.entries.lock().expect("dedup").get(key).cloned()
    }

    fn put(&self, key: &str, replies: &StoredReplies) {
        use base64::Engine as _;
        let line = Line {
            key: key.to_owned(),
            replies: replies
                .iter()
                .map(|r| {
                    let b64 =
                        |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
                    match r {
                        Ok(reply) if reply.headers.is_empty() => {
                            StoredReply::Ok(b64(&reply.payload))
                        }
                        Ok(reply) => StoredReply::WithHeaders(
                            b64(&reply.payload),
                            reply
                                .headers
                                .iter()
                                .map(|(k, v)| (k.to_owned(), b64(v)))
                                .collect(),
                        ),
                        Err(e) => StoredReply::Err(e.clone()),
                    }
                })
                .collect(),
        };
        let mut text = serde_json::to_string(&line).expect("dedup line serializes");
        text.push('\n');
        {
            let mut file = self.file.lock().expect("dedup file");
            // A failed write only weakens de-duplication; the reply still goes out.
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_data())
            {
                tracing::warn!(path = %self.path.display(), error = %e, "dedup store write failed");
            }
        }
        self.entries
            .lock()
            .expect("dedup")
            .insert(key.to_owned(), replies.clone());
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
}
