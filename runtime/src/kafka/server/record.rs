//! A consumed message as the server keeps it until its outcome is final.
//!
//! Read once out of librdkafka's buffer: the payload, the key and the headers (into one shared
//! [`Metadata`], sized up front); the pattern is shared with the server's topic list, and the
//! payload and headers with each attempt's `Incoming`. rdkafka's `OwnedMessage` would copy
//! every header into a C list of its own, which the handler's context then copies again.

use std::sync::Arc;
use std::time::SystemTime;

use rdkafka::message::{BorrowedMessage, Message as _};

use super::super::headers;
use super::reply::Unwritable;
use crate::Metadata;

/// One message of a request topic.
pub(super) struct Record {
    /// The topic: the pattern.
    pub pattern: Arc<str>,
    /// Its index in the server's topic list.
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<SystemTime>,
    pub key: Option<Vec<u8>>,
    /// `None` for a record without a value, and for one over the server's payload limit
    /// (never copied: see `oversized`). Shared with the handler's `Incoming`.
    pub payload: Option<Arc<[u8]>>,
    /// The payload's size when it is over the limit and was left in librdkafka's buffer.
    pub oversized: Option<usize>,
    /// Every header, in order; a null value reads as empty, a key that is not UTF-8 is
    /// decoded lossily.
    pub headers: Metadata,
    /// The headers exactly as written, kept only for a record the runtime cannot read (a
    /// header key that is not UTF-8): its dead-letter copy carries them unchanged.
    pub unreadable: Option<Box<RawHeaders>>,
    /// Set when the record was parked after its dead-letter copy was refused: handling it
    /// again only writes that copy.
    pub letter: Option<Unwritable>,
}

/// Headers as bytes: (key, value; `None` for a null value).
pub(super) type RawHeaders = [(Box<[u8]>, Option<Box<[u8]>>)];

impl Record {
    /// Copies `msg` out of the consumer's buffer; `pattern` is its topic's name. A payload
    /// over `max_payload` bytes is not copied (it is poison; the original stays in its topic).
    pub fn read(
        msg: &BorrowedMessage<'_>,
        (topic, pattern): (usize, Arc<str>),
        max_payload: usize,
    ) -> Record {
        let oversized = msg.payload_len() > max_payload;
        let text = headers::keys_are_text(msg.headers());
        Record {
            pattern,
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: headers::timestamp(msg),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().filter(|_| !oversized).map(Arc::from),
            oversized: oversized.then(|| msg.payload_len()),
            headers: headers::metadata_of(msg.headers(), text),
            unreadable: (!text).then(|| raw_headers(msg)),
            letter: None,
        }
    }

    /// The payload (empty without a value).
    pub fn payload(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }

    /// The bytes this record holds in memory (what the server's byte budget counts).
    pub fn size(&self) -> usize {
        let raw = self.unreadable.as_deref().map_or(0, |h| {
            h.iter()
                .map(|(k, v)| k.len() + v.as_deref().map_or(0, <[u8]>::len))
                .sum()
        });
        std::mem::size_of::<Record>()
            + self.payload.as_deref().map_or(0, <[u8]>::len)
            + self.key.as_deref().map_or(0, <[u8]>::len)
            + self.headers.byte_len()
            + raw
    }
}

fn raw_headers(msg: &BorrowedMessage<'_>) -> Box<RawHeaders> {
    msg.headers()
        .map(|h| {
            headers::raw(h)
                .map(|(k, v)| (Box::from(k), v.map(Box::from)))
                .collect()
        })
        .unwrap_or_default()
}
