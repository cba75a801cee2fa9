//! NestJS's Kafka header names and how values are read and written.

use std::borrow::Cow;
use std::ffi::CStr;

use rdkafka::bindings as rdsys;
use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};
use rdkafka::types::RDKafkaRespErr;

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
/// Names the run of the handler a reply comes from (16 hex digits; an axion server's
/// addition, which NestJS callers ignore): every reply of one run has the same.
pub const RUN: &str = "axion-run";

/// Every header of a record as bytes, in order, whatever a producer wrote.
///
/// Kafka header keys are bytes on the wire, and a Go or C producer can write any; rdkafka's
/// own `Headers::iter`/`get` turn the key into `&str` and panic on one that is not UTF-8, so
/// nothing here reads headers through them. (librdkafka keeps a key NUL-terminated: a key
/// with a NUL byte in it reads up to that byte.)
pub fn raw<H: RecordHeaders + ?Sized>(
    headers: &H,
) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
    let native = native(headers.borrowed());
    // SAFETY: `native` points at the live headers `headers` borrows.
    let count = unsafe { rdsys::rd_kafka_header_cnt(native) };
    (0..count).filter_map(move |i| {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0;
        // SAFETY: `i` is below the count; the out-pointers are valid for writes.
        let err =
            unsafe { rdsys::rd_kafka_header_get_all(native, i, &mut name, &mut value, &mut size) };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        // SAFETY: librdkafka hands out a NUL-terminated name and `size` value bytes (or a
        // null value), both owned by the headers and so alive as long as `headers` is.
        let key = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
        Some((key, value))
    })
}

/// One header as bytes, owned: its key, and its value (`None` for a null value).
pub type RawHeader = (Vec<u8>, Option<Vec<u8>>);

/// Headers this module reads: a consumed record's ([`BorrowedHeaders`]) or ones being built
/// ([`OwnedHeaders`]).
pub trait RecordHeaders {
    /// The headers as rdkafka's borrowed view.
    fn borrowed(&self) -> &BorrowedHeaders;
}

impl RecordHeaders for BorrowedHeaders {
    fn borrowed(&self) -> &BorrowedHeaders {
        self
    }
}

impl RecordHeaders for OwnedHeaders {
    fn borrowed(&self) -> &BorrowedHeaders {
        self.as_borrowed()
    }
}

/// The C headers behind rdkafka's (zero-sized) `BorrowedHeaders` reference.
fn native(headers: &BorrowedHeaders) -> *const rdsys::rd_kafka_headers_t {
    (headers as *const BorrowedHeaders).cast()
}

/// Appends a header whose key may be any bytes (a dead-letter copy keeps a foreign record's
/// headers exactly); `OwnedHeaders::insert` only takes a `&str` key.
pub fn with_raw(headers: OwnedHeaders, key: &[u8], value: Option<&[u8]>) -> OwnedHeaders {
    let native = native(headers.as_borrowed()).cast_mut();
    let (value_ptr, value_len) = match value {
        Some(v) => (v.as_ptr().cast(), v.len() as isize),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `headers` is owned here (no other reference to the C list exists) and writable
    // (made by `OwnedHeaders::new*`); librdkafka copies the name and value.
    unsafe {
        rdsys::rd_kafka_header_add(
            native,
            key.as_ptr().cast(),
            key.len() as isize,
            value_ptr,
            value_len,
        );
    }
    headers
}

/// Whether every header key of a record is UTF-8 (what [`Metadata`] holds unchanged).
pub fn keys_are_text<H: RecordHeaders + ?Sized>(headers: Option<&H>) -> bool {
    headers.is_none_or(|h| raw(h).all(|(k, _)| std::str::from_utf8(k).is_ok()))
}

/// The value of header `key`, if present (the last one wins, like kafkajs).
pub fn get<'a, H: RecordHeaders + ?Sized>(headers: Option<&'a H>, key: &str) -> Option<&'a [u8]> {
    raw(headers?)
        .filter(|(k, _)| *k == key.as_bytes())
        .last()
        .map(|(_, v)| v.unwrap_or_default())
}

/// A header value as text (lossy: garbage bytes must not stop a server).
pub fn text<H: RecordHeaders + ?Sized>(headers: Option<&H>, key: &str) -> Option<String> {
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
/// front and shared by its clones: one allocation (two past eight headers). A key that is not
/// UTF-8 is decoded lossily (U+FFFD), as the Java client and kafkajs do.
pub fn metadata<H: RecordHeaders + ?Sized>(headers: Option<&H>) -> Metadata {
    metadata_of(headers, keys_are_text(headers))
}

/// [`metadata`] for a caller that already knows whether every key is UTF-8.
pub(crate) fn metadata_of<H: RecordHeaders + ?Sized>(
    headers: Option<&H>,
    keys_are_text: bool,
) -> Metadata {
    let Some(headers) = headers else {
        return Metadata::new();
    };
    if keys_are_text {
        let text = raw(headers).map(|(k, v)| {
            (
                std::str::from_utf8(k).unwrap_or_default(),
                v.unwrap_or_default(),
            )
        });
        return Metadata::shared(text);
    }
    let lossy: Vec<(Cow<'_, str>, &[u8])> = raw(headers)
        .map(|(k, v)| (String::from_utf8_lossy(k), v.unwrap_or_default()))
        .collect();
    Metadata::shared(lossy.iter().map(|(k, v)| (&**k, *v)))
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
