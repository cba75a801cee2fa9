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
use crate::Metadata;

/// One message of a request topic.
pub(super) struct Record {
    /// The topic: the pattern.
    pub pattern: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<SystemTime>,
    pub key: Option<Vec<u8>>,
    /// `None` for a record without a value. Shared with the handler's `Incoming`.
    pub payload: Option<Arc<[u8]>>,
    /// Every header, in order; a null value reads as empty.
    pub headers: Metadata,
}

impl Record {
    /// Copies `msg` out of the consumer's buffer; `pattern` is its topic's name.
    pub fn read(msg: &BorrowedMessage<'_>, pattern: Arc<str>) -> Record {
        Record {
            pattern,
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: headers::timestamp(msg),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(Arc::from),
            headers: headers::metadata(msg.headers()),
        }
    }

    /// The payload (empty without a value).
    pub fn payload(&self) -> &[u8] {
        self.payload.as_deref().unwrap_or_default()
    }
}
