//! NestJS's Kafka header names and how values are read and written.

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::{Metadata, RpcError};

/// Correlates a reply with its request.
pub const CORRELATION_ID: &str = "kafka_correlationId";
/// Where the reply goes.
pub const REPLY_TOPIC: &str = "kafka_replyTopic";
/// Which partition of the reply topic.
pub const REPLY_PARTITION: &str = "kafka_replyPartition";
/// The error of a failed call (JSON object, or a bare string).
pub const NEST_ERR: &str = "kafka_nest-err";
/// Marks the last message of a reply (a single 0x00 byte).
pub const NEST_IS_DISPOSED: &str = "kafka_nest-is-disposed";

/// The value of header `key`, if present (the last one wins, like kafkajs).
pub fn get<'a, H: Headers>(headers: Option<&'a H>, key: &str) -> Option<&'a [u8]> {
    let headers = headers?;
    let mut found = None;
    for h in headers.iter() {
        if h.key == key {
            found = Some(h.value.unwrap_or_default());
        }
    }
    found
}

/// A header value as text (lossy: garbage bytes must not stop a server).
pub fn text<H: Headers>(headers: Option<&H>, key: &str) -> Option<String> {
    get(headers, key).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The bytes of `kafka_nest-err` for an error. NestJS sends its no-handler error as a bare
/// string and every other error as a JSON object.
pub fn error_value(e: &RpcError) -> Vec<u8> {
    if e.code.is_none() && e.details.is_empty() && e.message == crate::NO_HANDLER_MESSAGE {
        e.message.clone().into_bytes()
    } else {
        e.to_json().into_bytes()
    }
}

/// Every header of a record (a null value reads as empty), in one [`Metadata`] sized up
/// front and shared by its clones: one allocation (two past eight headers).
pub fn metadata<H: Headers>(headers: Option<&H>) -> Metadata {
    match headers {
        Some(headers) => Metadata::shared((0..headers.count()).map(|i| {
            let h = headers.get(i);
            (h.key, h.value.unwrap_or_default())
        })),
        None => Metadata::new(),
    }
}

/// A consumed record's timestamp, if it has one.
pub fn timestamp(msg: &impl rdkafka::Message) -> Option<std::time::SystemTime> {
    let ms = msg.timestamp().to_millis()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms.try_into().ok()?))
}

/// `headers` as a record's headers, with room for `more`.
pub fn owned(headers: &Metadata, more: usize) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len() + more),
        |h, (key, value)| with(h, key, value),
    )
}

/// Appends a header.
pub fn with(headers: OwnedHeaders, key: &str, value: &[u8]) -> OwnedHeaders {
    headers.insert(Header {
        key,
        value: Some(value),
    })
}

/// Short text formatted on the stack (correlation ids, partition numbers): header values
/// without a heap allocation per message.
pub struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    /// Formats `args`; panics if the text is longer than `N` bytes (callers size `N` for
    /// their largest value).
    pub fn format(args: std::fmt::Arguments<'_>) -> Self {
        use std::io::Write as _;
        let mut buf = [0u8; N];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        cursor.write_fmt(args).expect("StackText too small");
        let len = cursor.position() as usize;
        StackText { buf, len }
    }

    /// The formatted bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
