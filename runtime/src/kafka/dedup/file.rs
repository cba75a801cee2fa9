//! [`FileDedup`]: the durable store, on an embedded database (redb: one file, ACID
//! transactions, safe against a crash mid-write) instead of a file format of our own.
//!
//! Two tables: the replies by key, and the keys by the order they were stored, so that the
//! oldest go first when the store is over its bounds (entries or bytes) or they expired. Only
//! counters and the in-progress markers are in memory; a write's sync happens outside any lock
//! that readers or claims take.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Claim, DedupStore, Markers, StoredReplies};
use crate::{Reply, RpcError};

/// Replies by key: the value is the order number (8 bytes), when it was stored (Unix ms, 8
/// bytes), then the replies as JSON.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// Keys by order number: oldest first.
const ORDER: TableDefinition<u64, &str> = TableDefinition::new("order");

/// How long [`FileDedup::open`] remembers a request: far longer than any request stays
/// uncommitted (and so can be redelivered), short enough for the file to stay small.
pub const FILE_DEDUP_TTL: Duration = Duration::from_secs(24 * 3600);

/// Bounds of a [`FileDedup`]: past any of them the oldest entries go first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupLimits {
    /// How long an entry is remembered (default [`FILE_DEDUP_TTL`]).
    pub ttl: Duration,
    /// Most entries kept (default 1,000,000).
    pub max_entries: usize,
    /// Most bytes of keys and stored replies kept (default 1 GiB).
    pub max_bytes: u64,
}

impl Default for DedupLimits {
    fn default() -> Self {
        DedupLimits {
            ttl: FILE_DEDUP_TTL,
            max_entries: 1_000_000,
            max_bytes: 1 << 30,
        }
    }
}

/// A durable store in one file (a redb database), so it covers redeliveries after a crash or
/// `kill -9` of the process that uses it. Every write is committed and synced before the
/// server sends the request's last reply. Bounded: entries expire after their TTL and the
/// oldest go first past `max_entries` or `max_bytes` ([`DedupLimits`]). One server process per
/// file (the database is locked while open); in-progress markers live in memory, so they catch
/// concurrent duplicates within the process, not across processes.
pub struct FileDedup {
    path: PathBuf,
    db: Database,
    limits: DedupLimits,
    totals: Mutex<Totals>,
    markers: Mutex<Markers>,
}

impl std::fmt::Debug for FileDedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDedup")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What the tables hold, kept in memory (changed only inside write transactions, which the
/// database runs one at a time).
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    entries: usize,
    bytes: u64,
    next: u64,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One stored reply, as JSON.
#[derive(Serialize, Deserialize)]
enum StoredReply {
    /// A reply without headers: its base64 payload.
    Ok(String),
    /// A reply with headers: base64 payload, then (name, base64 value) pairs.
    WithHeaders(String, Vec<(String, String)>),
    Err(RpcError),
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

fn encode(order: u64, at: SystemTime, replies: &StoredReplies) -> Vec<u8> {
    let stored: Vec<StoredReply> = replies
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
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&order.to_le_bytes());
    out.extend_from_slice(&unix_ms(at).to_le_bytes());
    serde_json::to_writer(&mut out, &stored).expect("replies serialize");
    out
}

/// The order number and storing time of a value.
fn header(value: &[u8]) -> Option<(u64, u64)> {
    let order = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let at = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((order, at))
}

fn decode(value: &[u8]) -> Option<StoredReplies> {
    let stored: Vec<StoredReply> = serde_json::from_slice(value.get(16..)?).ok()?;
    Some(
        stored
            .into_iter()
            .map(|r| match r {
                StoredReply::Ok(payload) => Ok(Reply::from(unb64(payload))),
                StoredReply::WithHeaders(payload, headers) => Ok(Reply {
                    payload: unb64(payload),
                    headers: headers.into_iter().map(|(k, v)| (k, unb64(v))).collect(),
                }),
                StoredReply::Err(e) => Err(e),
            })
            .collect(),
    )
}

impl FileDedup {
    /// Opens (or creates) the store at `path` with the default bounds ([`DedupLimits`]),
    /// with what earlier runs stored. Fails if another process has it open, or if the file
    /// is not a store of this kind.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_with(path, DedupLimits::default())
    }

    /// Like [`FileDedup::open`], remembering each request for `ttl`.
    pub fn open_with_ttl(path: impl AsRef<Path>, ttl: Duration) -> std::io::Result<Self> {
        Self::open_with(
            path,
            DedupLimits {
                ttl,
                ..DedupLimits::default()
            },
        )
    }

    /// Like [`FileDedup::open`], within `limits`.
    pub fn open_with(path: impl AsRef<Path>, limits: DedupLimits) -> std::io::Result<Self> {
        let path = path.as_ref().to_owned();
        let db = Database::create(&path).map_err(|e| {
            let why = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "another FileDedup (in this process or another) has it open: one store per file"
                        .to_owned()
                }
                redb::DatabaseError::Storage(e) => format!(
                    "{e} (a store of an earlier version, JSON lines, is not read: move it away)"
                ),
                other => other.to_string(),
            };
            io(format!("dedup store {}: {why}", path.display()))
        })?;
        let write = db.begin_write().map_err(io)?;
        let mut totals = Totals::default();
        {
            let entries = write.open_table(ENTRIES).map_err(io)?;
            let order = write.open_table(ORDER).map_err(io)?;
            for row in entries.iter().map_err(io)? {
                let (key, value) = row.map_err(io)?;
                totals.entries += 1;
                totals.bytes += (key.value().len() + value.value().len()) as u64;
            }
            totals.next = order.last().map_err(io)?.map_or(0, |(k, _)| k.value() + 1);
        }
        let store = FileDedup {
            path,
            db,
            limits: DedupLimits {
                max_entries: limits.max_entries.max(1),
                ..limits
            },
            totals: Mutex::new(totals),
            markers: Mutex::default(),
        };
        let totals = store.evict(&write, totals).map_err(io)?;
        write.commit().map_err(io)?;
        *store.lock_totals() = totals;
        Ok(store)
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many requests it remembers (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.lock_totals().entries
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and replies it holds.
    pub fn bytes(&self) -> u64 {
        self.lock_totals().bytes
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_markers(&self) -> std::sync::MutexGuard<'_, Markers> {
        self.markers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, key: &str) -> Result<Option<StoredReplies>, redb::Error> {
        let read = self.db.begin_read()?;
        let entries = match read.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(value) = entries.get(key)? else {
            return Ok(None);
        };
        let value = value.value();
        let fresh = header(value).is_some_and(|(_, at)| {
            unix_ms(SystemTime::now()).saturating_sub(at) <= self.limits.ttl.as_millis() as u64
        });
        Ok(fresh.then(|| decode(value)).flatten())
    }

    /// Drops the oldest entries while the store is over a bound or they expired; returns the
    /// totals after.
    fn evict(&self, write: &redb::WriteTransaction, mut t: Totals) -> Result<Totals, redb::Error> {
        let mut entries = write.open_table(ENTRIES)?;
        let mut order = write.open_table(ORDER)?;
        let oldest_kept =
            unix_ms(SystemTime::now()).saturating_sub(self.limits.ttl.as_millis() as u64);
        loop {
            let Some((number, key)) = order
                .first()?
                .map(|(n, k)| (n.value(), k.value().to_owned()))
            else {
                break;
            };
            let at = entries
                .get(key.as_str())?
                .and_then(|v| header(v.value()))
                .filter(|(n, _)| *n == number)
                .map(|(_, at)| at);
            let over = t.entries > self.limits.max_entries || t.bytes > self.limits.max_bytes;
            // An order row whose entry was overwritten since is only dropped.
            if at.is_some_and(|at| !over && at >= oldest_kept) {
                break;
            }
            order.remove(number)?;
            if at.is_some() {
                if let Some(value) = entries.remove(key.as_str())? {
                    t.entries -= 1;
                    t.bytes -= (key.len() + value.value().len()) as u64;
                }
            }
        }
        Ok(t)
    }

    fn store(&self, key: &str, replies: &StoredReplies) -> Result<(), redb::Error> {
        let write = self.db.begin_write()?;
        // Write transactions run one at a time: the totals are ours until the commit.
        let mut t = *self.lock_totals();
        let size;
        {
            let mut entries = write.open_table(ENTRIES)?;
            let mut order = write.open_table(ORDER)?;
            let value = encode(t.next, SystemTime::now(), replies);
            if let Some(old) = entries.insert(key, value.as_slice())? {
                let old = old.value();
                if let Some((number, _)) = header(old) {
                    order.remove(number)?;
                }
                t.entries -= 1;
                t.bytes -= (key.len() + old.len()) as u64;
            }
            order.insert(t.next, key)?;
            size = (key.len() + value.len()) as u64;
            t.entries += 1;
            t.bytes += size;
            t.next += 1;
        }
        let t = self.evict(&write, t)?;
        write.commit()?;
        *self.lock_totals() = t;
        if size > self.limits.max_bytes {
            tracing::warn!(
                path = %self.path.display(),
                key,
                bytes = size,
                max_bytes = self.limits.max_bytes,
                "a request's replies are larger than the dedup store's max_bytes: not kept, so a redelivery runs its handler again"
            );
        }
        Ok(())
    }
}

impl DedupStore for FileDedup {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        self.find(key).unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "dedup store read failed");
            None
        })
    }

    fn put(&self, key: &str, replies: &StoredReplies) {
        // A failed write only weakens de-duplication; the reply still goes out.
        if let Err(e) = self.store(key, replies) {
            tracing::warn!(path = %self.path.display(), error = %e, "dedup store write failed");
        }
        // After the commit: a claim that finds no marker then finds the replies.
        self.lock_markers().clear(key);
    }

    fn claim(&self, key: &str, lease: Duration) -> Claim {
        let mut markers = self.lock_markers();
        if let Some(replies) = self.get(key) {
            return Claim::Done(replies);
        }
        if markers.try_mark(key, lease) {
            Claim::Run
        } else {
            Claim::InProgress
        }
    }

    fn release(&self, key: &str) {
        self.lock_markers().clear(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("axion-dedup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn it_survives_reopening() {
        let dir = tempdir("reopen");
        let path = dir.join("dedup.redb");
        let with_headers = Reply {
            payload: b"5".to_vec(),
            headers: [("x-a", &b"1"[..]), ("x-b", &[0xff][..])]
                .into_iter()
                .collect(),
        };
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
            store.put("p/5", &vec![Ok(with_headers.clone())]);
            assert!(
                FileDedup::open(&path).is_err(),
                "one process per file: a second open is refused"
            );
        }
        let store = FileDedup::open(&path).unwrap();
        assert_eq!(store.len(), 3);
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
        assert_eq!(store.get("p/5"), Some(vec![Ok(with_headers)]));
        assert!(store.get("p/3").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn it_marks_requests_in_progress() {
        let dir = tempdir("claims");
        super::super::tests::claims_until_put_or_release(
            &FileDedup::open(dir.join("d.redb")).unwrap(),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entries_expire_and_the_oldest_go_first_past_its_bounds() {
        let dir = tempdir("bounds");
        let path = dir.join("ttl.redb");
        let store = FileDedup::open_with_ttl(&path, Duration::from_millis(100)).unwrap();
        store.put("p/old", &vec![Ok(Reply::from(b"1".to_vec()))]);
        std::thread::sleep(Duration::from_millis(150));
        assert!(store.get("p/old").is_none(), "expired");
        drop(store);
        let store = FileDedup::open_with_ttl(&path, Duration::from_millis(100)).unwrap();
        assert_eq!(store.len(), 0, "evicted when opened");
        drop(store);

        let limits = DedupLimits {
            max_entries: 10,
            ..DedupLimits::default()
        };
        let path = dir.join("entries.redb");
        let store = FileDedup::open_with(&path, limits).unwrap();
        for n in 0..25 {
            store.put(
                &format!("p/{n}"),
                &vec![Ok(Reply::from(n.to_string().into_bytes()))],
            );
        }
        // Overwriting a key makes it the newest, once.
        store.put("p/16", &vec![Ok(Reply::from(b"again".to_vec()))]);
        store.put("p/25", &vec![Ok(Reply::from(b"25".to_vec()))]);
        assert_eq!(store.len(), 10);
        assert!(store.get("p/15").is_none(), "the oldest out");
        assert!(store.get("p/17").is_some());
        store.put("p/26", &vec![Ok(Reply::from(b"26".to_vec()))]);
        assert!(store.get("p/17").is_none(), "then the next oldest");
        assert_eq!(
            store.get("p/16"),
            Some(vec![Ok(Reply::from(b"again".to_vec()))]),
            "an overwritten key counts from its last write"
        );
        assert_eq!(
            store.get("p/25"),
            Some(vec![Ok(Reply::from(b"25".to_vec()))])
        );
        let bytes = store.bytes();
        drop(store);
        let again = FileDedup::open_with(&path, limits).unwrap();
        assert_eq!(
            (again.len(), again.bytes()),
            (10, bytes),
            "the totals are the file's"
        );
        drop(again);

        let limits = DedupLimits {
            max_bytes: 4_000,
            ..DedupLimits::default()
        };
        let store = FileDedup::open_with(dir.join("bytes.redb"), limits).unwrap();
        for n in 0..50 {
            store.put(&format!("p/{n}"), &vec![Ok(Reply::from(vec![b'x'; 500]))]);
        }
        assert!(store.bytes() <= 4_000, "{} bytes", store.bytes());
        assert!(store.len() >= 3, "{} entries", store.len());
        assert!(store.get("p/49").is_some() && store.get("p/0").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
