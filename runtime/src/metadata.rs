//! Message headers: an ordered multi-map of header names to byte values, as Kafka has them.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

/// The headers of one message, in order, keys repeatable (Kafka allows several values per
/// name). Values are bytes; [`Metadata::get_str`] is the UTF-8 view. Where a name repeats,
/// [`Metadata::get`] returns the last value, as kafkajs (and so NestJS) does.
///
/// Stored in one buffer, with where each header starts kept inline: reading a record's headers
/// costs one allocation (two past eight headers), and the headers of a consumed record are
/// shared by its clones (each attempt's handler context) until one of them changes.
#[derive(Clone, Default)]
pub struct Metadata {
    bytes: Buffer,
    /// Per header: where its key starts, where its value starts (= key end), where it ends.
    spans: SmallVec<[[u32; 3]; INLINE_HEADERS]>,
}

/// The names and values of a [`Metadata`], back to back.
#[derive(Clone)]
enum Buffer {
    /// Being built (appended to).
    Owned(Vec<u8>),
    /// Read once, then only shared: a clone is a reference count.
    Shared(Arc<[u8]>),
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer::Owned(Vec::new())
    }
}

impl Buffer {
    fn as_slice(&self) -> &[u8] {
        match self {
            Buffer::Owned(v) => v,
            Buffer::Shared(a) => a,
        }
    }

    /// The buffer to append `more` bytes to (a shared one is copied first, with room for them).
    fn to_mut(&mut self, more: usize) -> &mut Vec<u8> {
        if let Buffer::Shared(a) = self {
            let mut owned = Vec::with_capacity(a.len() + more);
            owned.extend_from_slice(a);
            *self = Buffer::Owned(owned);
        }
        match self {
            Buffer::Owned(v) => v,
            Buffer::Shared(_) => unreachable!("made owned above"),
        }
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.spans == other.spans && self.bytes.as_slice() == other.bytes.as_slice()
    }
}

impl Eq for Metadata {}

fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("headers larger than 4 GiB")
}

/// Headers a [`Metadata`] holds without a second allocation. A NestJS request has three
/// (`kafka_correlationId`, `kafka_replyTopic`, `kafka_replyPartition`), ours up to six with
/// the deadline and the trace context.
const INLINE_HEADERS: usize = 8;

impl Metadata {
    /// No headers.
    pub const fn new() -> Self {
        Metadata {
            bytes: Buffer::Owned(Vec::new()),
            spans: SmallVec::new_const(),
        }
    }

    /// No headers yet, with room for `headers` of `bytes` bytes (names and values together)
    /// before it reallocates.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        Metadata {
            bytes: Buffer::Owned(Vec::with_capacity(bytes)),
            spans: SmallVec::with_capacity(headers),
        }
    }

    /// `headers`, in order, in one buffer allocated once and shared by every clone (a
    /// consumed record's headers, which are read, not changed).
    pub(crate) fn shared<'a, I>(headers: I) -> Self
    where
        I: Iterator<Item = (&'a str, &'a [u8])> + Clone,
    {
        let (count, size) = headers.clone().fold((0, 0), |(n, size), (k, v)| {
            (n + 1, size + k.len() + v.len())
        });
        if count == 0 {
            return Metadata::new();
        }
        // `RepeatN` knows its length: the `Arc` is allocated once, at its final size.
        let mut bytes: Arc<[u8]> = std::iter::repeat_n(0, size).collect();
        let buf = Arc::get_mut(&mut bytes).expect("a new Arc has no other owner");
        let mut spans = SmallVec::with_capacity(count);
        let mut at = 0;
        for (key, value) in headers {
            let mid = at + key.len();
            let end = mid + value.len();
            buf[at..mid].copy_from_slice(key.as_bytes());
            buf[mid..end].copy_from_slice(value);
            spans.push([offset(at), offset(mid), offset(end)]);
            at = end;
        }
        Metadata {
            bytes: Buffer::Shared(bytes),
            spans,
        }
    }

    /// Number of headers (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of the names and values together.
    pub fn byte_len(&self) -> usize {
        self.bytes.as_slice().len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Adds a header after the others, keeping any with the same name.
    ///
    /// # Panics
    /// If the headers grow past 4 GiB.
    pub fn append(&mut self, key: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let bytes = self.bytes.to_mut(key.len() + value.len());
        let start = bytes.len();
        bytes.extend_from_slice(key.as_bytes());
        let mid = bytes.len();
        bytes.extend_from_slice(value);
        let end = bytes.len();
        self.spans.push([offset(start), offset(mid), offset(end)]);
    }

    /// Sets a header: removes every header named `key`, then appends this one.
    pub fn insert(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.remove(key);
        self.append(key, value);
    }

    /// Removes every header named `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        if !self.contains_key(key) {
            return 0;
        }
        let mut kept = Metadata::with_capacity(self.spans.len(), self.bytes.as_slice().len());
        for (k, v) in self.iter().filter(|(k, _)| *k != key) {
            kept.append(k, v);
        }
        let removed = self.len() - kept.len();
        *self = kept;
        removed
    }

    /// The last value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// The last value of `key` as text; `None` if absent or not UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether a header named `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.iter().any(|(k, _)| k == key)
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        let bytes = self.bytes.as_slice();
        self.spans.iter().map(move |&[start, mid, end]| {
            let key = &bytes[start as usize..mid as usize];
            // Keys only ever come in as `&str`.
            let key = std::str::from_utf8(key).unwrap_or_default();
            (key, &bytes[mid as usize..end as usize])
        })
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.iter() {
            match std::str::from_utf8(v) {
                _ if is_secret(k) => map.entry(&k, &"<redacted>"),
                Ok(text) => map.entry(&k, &text),
                Err(_) => map.entry(&k, &v),
            };
        }
        map.finish()
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Metadata::new();
        m.extend(iter);
        m
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.append(k.as_ref(), v);
        }
    }
}

/// Whether the transport sets header `name` itself (routing, deadline, trace context), so a
/// caller's or handler's own value is not sent.
pub(crate) fn is_transport_header(name: &str) -> bool {
    // Case-insensitively: OpenTelemetry's kafkajs getter matches `Traceparent` too.
    // Bytes, not `str` slices: a hostile name may have a multi-byte character there.
    let lower = |prefix: &str| {
        name.len() >= prefix.len()
            && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    lower("kafka_")
        || [crate::deadline::HEADER, "traceparent", "tracestate"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
}

/// Header names whose values `Debug` does not print (credentials).
fn is_secret(name: &str) -> bool {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// `headers` without the ones the transport sets itself, with room for `more` headers of
/// `more_bytes` bytes.
pub(crate) fn user_headers(headers: &Metadata, more: usize, more_bytes: usize) -> Metadata {
    let mut kept = Metadata::with_capacity(
        headers.len() + more,
        headers.bytes.as_slice().len() + more_bytes,
    );
    for (k, v) in headers.iter().filter(|(k, _)| !is_transport_header(k)) {
        kept.append(k, v);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::{Buffer, Metadata, INLINE_HEADERS};

    #[test]
    fn up_to_eight_headers_take_one_buffer() {
        let mut m = Metadata::with_capacity(INLINE_HEADERS, 64);
        for i in 0..INLINE_HEADERS {
            m.append(&format!("h{i}"), "v");
        }
        assert!(!m.spans.spilled(), "the header positions live inline");
        assert!(!m.clone().spans.spilled(), "and so do a clone's");
        m.append("one-more", "v");
        assert!(m.spans.spilled());
        assert_eq!(m.get_str("h3"), Some("v"));
        assert_eq!(m.len(), INLINE_HEADERS + 1);
    }

    #[test]
    fn shared_headers_are_cloned_without_a_copy_and_copied_when_changed() {
        let pairs = [("a", &b"1"[..]), ("b", &[0xff][..]), ("a", &b""[..])];
        let shared = Metadata::shared(pairs.iter().copied());
        let built: Metadata = pairs.iter().copied().collect();
        assert_eq!(shared, built);
        assert_eq!(shared.iter().collect::<Vec<_>>(), pairs);
        let mut clone = shared.clone();
        let (Buffer::Shared(a), Buffer::Shared(b)) = (&shared.bytes, &clone.bytes) else {
            panic!("a consumed record's headers are shared");
        };
        assert!(std::sync::Arc::ptr_eq(a, b), "a clone shares the buffer");
        clone.append("c", "3");
        assert_eq!(clone.get_str("c"), Some("3"));
        assert_eq!(shared.get_str("c"), None, "the original is unchanged");
        assert_eq!(shared.get_str("a"), Some(""));
        assert!(Metadata::shared(std::iter::empty()).is_empty());
    }

    #[test]
    fn repeated_names_keep_order_and_the_last_value_wins() {
        let mut m = Metadata::new();
        m.append("a", "1");
        m.append("b", [0xff, 0x00]);
        m.append("a", "2");
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("a"), Some(&b"2"[..]));
        assert_eq!(m.get_all("a").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(m.get_str("b"), None, "not UTF-8");
        assert_eq!(m.get("b"), Some(&[0xff, 0x00][..]));
        assert_eq!(m.get("c"), None);
        assert_eq!(format!("{m:?}"), r#"{"a": "1", "b": [255, 0], "a": "2"}"#);
    }

    #[test]
    fn credentials_are_not_printed_and_transport_names_match_in_any_case() {
        let m: Metadata = [("Authorization", "Bearer s3cret"), ("x", "1")]
            .into_iter()
            .collect();
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
        for name in [
            "Traceparent",
            "KAFKA_replyTopic",
            "Axion-Deadline",
            "tracestate",
        ] {
            assert!(super::is_transport_header(name), "{name}");
        }
        assert!(!super::is_transport_header("kafka"));
        assert!(
            !super::is_transport_header("kafk\u{e9}_x"),
            "a multi-byte name, no panic"
        );
        assert!(!super::is_transport_header("x-trace"));
    }

    #[test]
    fn insert_replaces_every_value_and_remove_counts() {
        let mut m: Metadata = [("x", "1"), ("y", "2"), ("x", "3")].into_iter().collect();
        m.insert("x", "4");
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("y", &b"2"[..]), ("x", &b"4"[..])]
        );
        assert_eq!(m.remove("x"), 1);
        assert_eq!(m.remove("x"), 0);
        assert_eq!(m.len(), 1);
        assert!(m.contains_key("y"));
        m.append("", "");
        assert_eq!(m.get(""), Some(&b""[..]));
    }
}
