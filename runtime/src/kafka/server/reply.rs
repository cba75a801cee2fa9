//! What a server writes: replies in NestJS's shape, and dead-letter copies.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;

use super::super::dlq::{self, Origin, Poison, PoisonReason, ReplyTo};
use super::super::headers;
use super::record::Record;
use super::Shared;
use crate::{Reply, RpcError};

/// One run of a request's handler, named on each of its replies ([`headers::RUN`]): a
/// caller that sees a second run's items after the first's (a stream cut off by a rebalance
/// and run again by the next owner) fails instead of taking both.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run(u64);

impl Run {
    pub(super) fn new() -> Self {
        Run(fastrand::u64(..))
    }
}

/// Sends one reply (with its headers: the handler's and the trace context; NestJS's own
/// `kafka_*` names come from here only); `disposed` marks the last one of the request (an
/// error always is).
pub(super) async fn send_reply(
    shared: &Shared,
    to: &ReplyTo<'_>,
    item: Option<Result<Reply, RpcError>>,
    disposed: bool,
    run: Run,
) -> Result<(), String> {
    let mut hdrs = OwnedHeaders::new();
    if let Some(Ok(reply)) = &item {
        for (key, value) in reply.headers.iter() {
            if !key.starts_with("kafka_") {
                hdrs = headers::with(hdrs, key, value);
            }
        }
    }
    hdrs = headers::with(hdrs, headers::CORRELATION_ID, to.correlation_id.as_bytes());
    let run = headers::StackText::<16>::format(format_args!("{:016x}", run.0));
    hdrs = headers::with(hdrs, headers::RUN, run.as_bytes());
    let payload = match &item {
        Some(Ok(reply)) => Some(reply.payload.as_slice()),
        Some(Err(e)) => {
            hdrs = headers::with(hdrs, headers::NEST_ERR, &headers::error_value(e));
            None
        }
        None => None,
    };
    if disposed || matches!(item, Some(Err(_))) {
        hdrs = headers::with(hdrs, headers::NEST_IS_DISPOSED, &[0u8]);
    }
    let mut record = FutureRecord::<(), [u8]>::to(to.topic).headers(hdrs);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    if let Some(p) = to.partition {
        record = record.partition(p);
    }
    shared
        .producer
        .send_awaited(record)
        .await
        .map_err(|e| format!("reply to {} not delivered: {e}", to.topic))
}

/// After a reply could not be delivered (too large for the broker, refused): a small error
/// reply instead, so the caller learns at once that its request was handled but the answer
/// is lost, rather than waiting for its timeout and perhaps sending it again.
pub(super) async fn undeliverable(shared: &Shared, to: &ReplyTo<'_>, why: &str, run: Run) {
    let e = RpcError::internal(format!(
        "the request was handled but its reply could not be delivered: {why}"
    ))
    .with_detail("reason", dlq::PoisonReason::ReplyUndeliverable.as_str());
    if let Err(again) = send_reply(shared, to, Some(Err(e)), true, run).await {
        tracing::warn!(
            reply_topic = to.topic,
            correlation_id = to.correlation_id,
            error = %again,
            "the notice of an undeliverable reply was not delivered either"
        );
    }
}

/// Sends stored replies (the last one disposed).
pub(super) async fn send_all(
    shared: &Shared,
    to: &ReplyTo<'_>,
    all: Vec<Result<Reply, RpcError>>,
    run: Run,
) -> Result<(), String> {
    let count = all.len();
    if count == 0 {
        return send_reply(shared, to, None, true, run).await;
    }
    let mut delivered = Ok(());
    for (i, item) in all.into_iter().enumerate() {
        delivered = delivered.and(send_reply(shared, to, Some(item), i + 1 == count, run).await);
    }
    delivered
}

/// First and longest wait between two attempts of a dead-letter write.
const DLQ_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// Writes of one copy that failed with an error that may pass (a broker away, a full queue)
/// before the record is parked instead of holding its handler slot.
const DLQ_WRITES: u32 = 5;

/// A dead-letter copy the bus would not take, not even reduced: the record is parked (its
/// partition paused, its offset uncommitted) and handled again later.
#[derive(Clone, Debug)]
pub(super) struct Unwritable {
    /// The verdict the copy was for, and how many times the handler ran.
    pub poison: Poison,
    pub attempts: u32,
}

/// How much of a record a dead-letter copy carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copy {
    /// Key, payload and headers as read.
    Whole,
    /// Key and headers, no payload (the whole copy was refused as too large).
    NoPayload,
    /// The `axion-dlq-*` headers only (the key and headers are too large as well).
    Bare,
}

/// What a failed write says about writing again.
#[derive(Debug, PartialEq, Eq)]
enum WriteError {
    /// The record is too large for the client or the broker: a smaller copy may pass.
    TooLarge,
    /// The same write will be refused again (no such topic, not authorized, invalid).
    Permanent,
    /// May pass later (broker away, timed out, queue full).
    Transient,
}

fn classify(e: &KafkaError) -> WriteError {
    use RDKafkaErrorCode as C;
    let Some(code) = e.rdkafka_error_code() else {
        return WriteError::Transient;
    };
    match code {
        C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize => {
            WriteError::TooLarge
        }
        C::UnknownTopic
        | C::UnknownTopicOrPartition
        | C::InvalidTopic
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::InvalidRecord
        | C::PolicyViolation
        | C::UnsupportedForMessageFormat
        | C::InvalidRequiredAcks
        | C::InvalidArgument
        | C::UnknownPartition => WriteError::Permanent,
        _ => WriteError::Transient,
    }
}

/// Copies `msg` to `<pattern>.dlq` (payload, key and headers kept exactly; `axion-dlq-*`
/// added) and logs it once. The caller finishes (commits) the offset only on `Ok`, so a message
/// is never lost to a failed dead-letter write:
/// - an error that may pass is retried with backoff, [`DLQ_WRITES`] times;
/// - a copy refused as too large is sent again without its payload
///   (`payload-too-large-for-dlq`; the original stays in its topic for its retention), then
///   without its key and headers;
/// - what still fails is `Err`: logged at ERROR, counted in `axion_dead_letter_failures_total`,
///   and the record parked (see [`Unwritable`]), without holding a handler slot.
pub(super) async fn dead_letter(
    shared: &Shared,
    msg: &Record,
    (reason, error): Poison,
    attempts: u32,
) -> Result<(), Unwritable> {
    let topic = dlq::dlq_topic(&msg.pattern);
    let mut copy = Copy::Whole;
    let mut why = error.clone();
    let mut wait = DLQ_BACKOFF.0;
    let mut write = 0;
    let refusal = loop {
        write += 1;
        let origin = Origin {
            topic: &msg.pattern,
            partition: msg.partition,
            offset: msg.offset,
            reason: if copy == Copy::Whole {
                reason
            } else {
                PoisonReason::PayloadTooLargeForDlq
            },
            error: &why,
            attempts,
        };
        let original = match copy {
            Copy::Bare => OwnedHeaders::new_with_capacity(dlq::ADDED_HEADERS),
            _ => original_headers(msg),
        };
        let hdrs = dlq::dead_letter_headers(original, &origin);
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(hdrs);
        if let (Some(key), false) = (&msg.key, copy == Copy::Bare) {
            record = record.key(key);
        }
        if let (Some(payload), Copy::Whole) = (&msg.payload, copy) {
            record = record.payload(payload);
        }
        let e = match shared.producer.send_awaited(record).await {
            Ok(()) => {
                crate::metrics::global().dead_lettered(&msg.pattern, origin.reason.as_str());
                tracing::warn!(
                    pattern = &*msg.pattern,
                    partition = msg.partition,
                    offset = msg.offset,
                    reason = origin.reason.as_str(),
                    attempts,
                    error = %why,
                    dlq = %topic,
                    "message dead-lettered"
                );
                return Ok(());
            }
            Err(e) => e,
        };
        let class = classify(&e);
        tracing::warn!(
            pattern = &*msg.pattern,
            partition = msg.partition,
            offset = msg.offset,
            reason = reason.as_str(),
            dlq = %topic,
            write,
            copy = ?copy,
            class = ?class,
            error = %e,
            "dead-letter write failed"
        );
        match (class, copy) {
            (WriteError::TooLarge, Copy::Whole | Copy::NoPayload) => {
                copy = if copy == Copy::Whole {
                    Copy::NoPayload
                } else {
                    Copy::Bare
                };
                why = format!(
                    "{}: {error}; the copy with its payload was refused: {e}",
                    reason.as_str()
                );
            }
            (WriteError::Transient, _) if write < DLQ_WRITES => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(DLQ_BACKOFF.1);
            }
            _ => break e,
        }
    };
    crate::metrics::global().dead_letter_refused(&msg.pattern, reason.as_str());
    tracing::error!(
        pattern = &*msg.pattern,
        partition = msg.partition,
        offset = msg.offset,
        reason = reason.as_str(),
        dlq = %topic,
        writes = write,
        error = %refusal,
        "dead-letter copy refused; the record stays uncommitted, its partition paused, and it is handled again later"
    );
    Err(Unwritable {
        poison: (reason, error),
        attempts,
    })
}

/// The record's own headers for its dead-letter copy: exactly as written for an unreadable
/// record, else as read.
fn original_headers(msg: &Record) -> OwnedHeaders {
    match &msg.unreadable {
        Some(raw) => raw.iter().fold(
            OwnedHeaders::new_with_capacity(raw.len() + dlq::ADDED_HEADERS),
            |h, (key, value)| headers::with_raw(h, key, value.as_deref()),
        ),
        None => headers::owned(&msg.headers, dlq::ADDED_HEADERS),
    }
}
