//! Poison messages: what is wrong with them, and the dead-letter topic they go to.
//!
//! A message the server cannot handle (too big, not JSON, an unusable or forbidden reply
//! address, an event that does not decode) never reaches or never blocks the handler. A
//! request with a usable reply address gets an `INVALID_ARGUMENT` error reply; anything else —
//! an event, or a request whose reply address is missing, garbage or not allowed — is copied to
//! `<pattern>.dlq` with its key, payload and headers unchanged plus the `axion-dlq-*` headers
//! below. Events whose handler keeps failing end there too, after their retries
//! ([`super::retry`]). The offset moves on only once the copy is acknowledged, the server keeps
//! serving, and the case is logged once (one `warn`). A record the runtime cannot read (a
//! header key that is not UTF-8) is copied with its headers byte for byte; an oversized payload
//! is not copied at all (the copy says where the original is); a copy too large for the bus
//! goes without its payload (`payload-too-large-for-dlq`).

use rdkafka::message::OwnedHeaders;

use super::headers;
use crate::Metadata;

/// Suffix of a pattern's dead-letter topic.
pub const DLQ_SUFFIX: &str = ".dlq";
/// Header: why the message was dead-lettered ([`PoisonReason::as_str`]).
pub const DLQ_REASON: &str = "axion-dlq-reason";
/// Header: the error text, for humans.
pub const DLQ_ERROR: &str = "axion-dlq-error";
/// Header: the topic the message was read from.
pub const DLQ_TOPIC: &str = "axion-dlq-topic";
/// Header: its partition (decimal text).
pub const DLQ_PARTITION: &str = "axion-dlq-partition";
/// Header: its offset (decimal text).
pub const DLQ_OFFSET: &str = "axion-dlq-offset";
/// Header: how many times the handler ran (decimal text; 0 when it never did).
pub const DLQ_ATTEMPTS: &str = "axion-dlq-attempts";
/// Content types a server accepts in a `content-type` header (NestJS sends none).
const JSON_CONTENT_TYPES: &[&str] = &["application/json", "text/json", "application/x-json"];

/// The dead-letter topic of `pattern`.
pub fn dlq_topic(pattern: &str) -> String {
    format!("{pattern}{DLQ_SUFFIX}")
}

/// Why a message is poison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoisonReason {
    /// The payload is larger than `max_message_bytes`.
    Oversized,
    /// A `content-type` header that is not JSON.
    WrongContentType,
    /// The payload does not decode into the message type (includes non-JSON payloads).
    Undecodable,
    /// `kafka_correlationId` is not UTF-8 text.
    BadCorrelationId,
    /// A correlation id without a reply topic (or the other way round).
    MissingReplyAddress,
    /// `kafka_replyTopic` is not a legal topic name.
    BadReplyTopic,
    /// `kafka_replyPartition` is not a partition number.
    BadReplyPartition,
    /// The reply could not be delivered (the reply topic does not exist, the broker refused).
    ReplyUndeliverable,
    /// `kafka_replyTopic` names a topic the service may not write replies to (not the
    /// pattern's `<pattern>.reply` nor a configured extra).
    ReplyTopicNotAllowed,
    /// The event's handler failed on every attempt, or with a code that is not retried.
    HandlerFailed,
    /// The record cannot be read as a message (a header key that is not UTF-8): its copy
    /// keeps the record's bytes exactly.
    UnreadableRecord,
    /// The dead-letter copy with the payload was refused as too large: this copy has the
    /// headers, origin and error only (the original stays in its topic for its retention).
    PayloadTooLargeForDlq,
}

impl PoisonReason {
    /// The value of the `axion-dlq-reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            PoisonReason::Oversized => "oversized",
            PoisonReason::WrongContentType => "wrong-content-type",
            PoisonReason::Undecodable => "undecodable",
            PoisonReason::BadCorrelationId => "bad-correlation-id",
            PoisonReason::MissingReplyAddress => "missing-reply-address",
            PoisonReason::BadReplyTopic => "bad-reply-topic",
            PoisonReason::BadReplyPartition => "bad-reply-partition",
            PoisonReason::ReplyUndeliverable => "reply-undeliverable",
            PoisonReason::ReplyTopicNotAllowed => "reply-topic-not-allowed",
            PoisonReason::HandlerFailed => "handler-failed",
            PoisonReason::UnreadableRecord => "unreadable-record",
            PoisonReason::PayloadTooLargeForDlq => "payload-too-large-for-dlq",
        }
    }
}

/// Where a request's replies go (borrowed from the request's headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo<'a> {
    /// `kafka_correlationId`.
    pub correlation_id: &'a str,
    /// `kafka_replyTopic`.
    pub topic: &'a str,
    /// `kafka_replyPartition`, if sent.
    pub partition: Option<i32>,
}

/// A poison verdict: the reason and a human explanation.
pub type Poison = (PoisonReason, String);

/// Reads the reply address: `Ok(None)` for an event (neither correlation id nor reply topic,
/// as NestJS decides), `Err` for an address that is half there or garbage.
pub fn reply_to(hdrs: &Metadata) -> Result<Option<ReplyTo<'_>>, Poison> {
    let present = |key| hdrs.get(key).filter(|v| !v.is_empty());
    let (id, topic) = match (
        present(headers::CORRELATION_ID),
        present(headers::REPLY_TOPIC),
    ) {
        (None, None) => return Ok(None),
        (Some(id), Some(topic)) => (id, topic),
        _ => {
            return Err((
                PoisonReason::MissingReplyAddress,
                "a request needs both kafka_correlationId and kafka_replyTopic".to_owned(),
            ))
        }
    };
    let correlation_id = std::str::from_utf8(id)
        .ok()
        .filter(|t| !t.chars().any(char::is_control))
        .ok_or_else(|| {
            (
                PoisonReason::BadCorrelationId,
                "kafka_correlationId is not printable UTF-8 text".to_owned(),
            )
        })?;
    let topic = std::str::from_utf8(topic)
        .ok()
        .filter(|t| is_topic_name(t))
        .ok_or_else(|| {
            (
                PoisonReason::BadReplyTopic,
                format!(
                    "kafka_replyTopic {:?} is not a topic name",
                    String::from_utf8_lossy(topic)
                ),
            )
        })?;
    let partition = match hdrs.get(headers::REPLY_PARTITION) {
        None => None,
        Some(raw) => Some(parse_partition(raw).ok_or_else(|| {
            (
                PoisonReason::BadReplyPartition,
                format!(
                    "kafka_replyPartition {:?} is not a partition number",
                    String::from_utf8_lossy(raw)
                ),
            )
        })?),
    };
    Ok(Some(ReplyTo {
        correlation_id,
        topic,
        partition,
    }))
}

/// NestJS writes the partition as decimal text (`"0"`); kafkajs peers may write `"0.0"`.
fn parse_partition(raw: &[u8]) -> Option<i32> {
    let p = std::str::from_utf8(raw).ok()?.trim().parse::<f64>().ok()?;
    (p.is_finite() && p >= 0.0 && p.fract() == 0.0 && p <= f64::from(i32::MAX)).then_some(p as i32)
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn is_topic_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks what the handler would choke on before it runs.
pub fn check_payload(hdrs: &Metadata, payload: &[u8], max_bytes: usize) -> Result<(), Poison> {
    if payload.len() > max_bytes {
        return Err((
            PoisonReason::Oversized,
            format!(
                "the payload has {} bytes; the limit (KAFKA_MAX_MESSAGE_BYTES) is {max_bytes}",
                payload.len()
            ),
        ));
    }
    for (key, value) in hdrs.iter() {
        if !key.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let value = String::from_utf8_lossy(value);
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !JSON_CONTENT_TYPES.contains(&essence.as_str()) && !essence.ends_with("+json") {
            return Err((
                PoisonReason::WrongContentType,
                format!("content-type {value:?} is not JSON"),
            ));
        }
    }
    Ok(())
}

/// Where a dead-letter copy comes from and why it is one.
pub(crate) struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: PoisonReason,
    pub error: &'a str,
    pub attempts: u32,
}

/// Headers the `axion-dlq-*` ones add to a dead-letter copy.
pub(crate) const ADDED_HEADERS: usize = 6;

/// The dead-letter copy's headers: `original` (the record's, or none), then the `axion-dlq-*`
/// ones.
pub(crate) fn dead_letter_headers(original: OwnedHeaders, origin: &Origin<'_>) -> OwnedHeaders {
    let out = original;
    let partition = headers::StackText::<12>::format(format_args!("{}", origin.partition));
    let offset = headers::StackText::<20>::format(format_args!("{}", origin.offset));
    let attempts = headers::StackText::<10>::format(format_args!("{}", origin.attempts));
    [
        (DLQ_REASON, origin.reason.as_str().as_bytes()),
        (DLQ_ERROR, origin.error.as_bytes()),
        (DLQ_TOPIC, origin.topic.as_bytes()),
        (DLQ_PARTITION, partition.as_bytes()),
        (DLQ_OFFSET, offset.as_bytes()),
        (DLQ_ATTEMPTS, attempts.as_bytes()),
    ]
    .into_iter()
    .fold(out, |out, (key, value)| headers::with(out, key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &[u8])]) -> Metadata {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn reply_addresses() {
        let ok = hdrs(&[
            (headers::CORRELATION_ID, b"abc"),
            (headers::REPLY_TOPIC, b"a.b-c_d.reply"),
            (headers::REPLY_PARTITION, b"2"),
        ]);
        assert_eq!(
            reply_to(&ok).unwrap(),
            Some(ReplyTo {
                correlation_id: "abc",
                topic: "a.b-c_d.reply",
                partition: Some(2)
            })
        );
        assert_eq!(reply_to(&Metadata::new()).unwrap(), None);
        let reason = |pairs: &[(&str, &[u8])]| reply_to(&hdrs(pairs)).unwrap_err().0;
        assert_eq!(
            reason(&[(headers::CORRELATION_ID, b"x")]),
            PoisonReason::MissingReplyAddress
        );
        assert_eq!(
            reason(&[
                (headers::CORRELATION_ID, b"\xff\xfe"),
                (headers::REPLY_TOPIC, b"t")
            ]),
            PoisonReason::BadCorrelationId
        );
        assert_eq!(
            reason(&[
                (headers::CORRELATION_ID, b"x"),
                (headers::REPLY_TOPIC, b"no spaces")
            ]),
            PoisonReason::BadReplyTopic
        );
        for garbage in [&b"-1"[..], b"1.5", b"NaN", b"zero", b"99999999999"] {
            assert_eq!(
                reason(&[
                    (headers::CORRELATION_ID, b"x"),
                    (headers::REPLY_TOPIC, b"t"),
                    (headers::REPLY_PARTITION, garbage)
                ]),
                PoisonReason::BadReplyPartition
            );
        }
    }

    #[test]
    fn payload_checks() {
        let none = Metadata::new();
        assert!(check_payload(&none, b"{}", 2).is_ok());
        assert_eq!(
            check_payload(&none, b"{ }", 2).unwrap_err().0,
            PoisonReason::Oversized
        );
        let xml = hdrs(&[("Content-Type", b"application/xml")]);
        assert_eq!(
            check_payload(&xml, b"<a/>", 100).unwrap_err().0,
            PoisonReason::WrongContentType
        );
        let json = hdrs(&[("content-type", b"application/json; charset=utf-8")]);
        assert!(check_payload(&json, b"{}", 100).is_ok());
    }
}
