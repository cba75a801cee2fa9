//! What a server writes: replies in NestJS's shape, and dead-letter copies.

use std::time::Duration;

use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;

use super::super::dlq::{self, Origin, Poison, ReplyTo};
use super::super::headers;
use super::record::Record;
use super::Shared;
use crate::{Reply, RpcError};

/// Sends one reply (with its headers: the handler's and the trace context; NestJS's own
/// `kafka_*` names come from here only); `disposed` marks the last one of the request (an
/// error always is).
pub(super) async fn send_reply(
    shared: &Shared,
    to: &ReplyTo<'_>,
    item: Option<Result<Reply, RpcError>>,
    disposed: bool,
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
pub(super) async fn undeliverable(shared: &Shared, to: &ReplyTo<'_>, why: &str) {
    let e = RpcError::internal(format!(
        "the request was handled but its reply could not be delivered: {why}"
    ))
    .with_detail("reason", dlq::PoisonReason::ReplyUndeliverable.as_str());
    if let Err(again) = send_reply(shared, to, Some(Err(e)), true).await {
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
) -> Result<(), String> {
    let count = all.len();
    if count == 0 {
        return send_reply(shared, to, None, true).await;
    }
    let mut delivered = Ok(());
    for (i, item) in all.into_iter().enumerate() {
        delivered = delivered.and(send_reply(shared, to, Some(item), i + 1 == count).await);
    }
    delivered
}

/// First and longest wait between two attempts of a dead-letter write.
const DLQ_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Copies `msg` to `<pattern>.dlq` (payload, key and headers kept; `axion-dlq-*` added) and
/// logs it once. A write the broker refuses is tried again, with backoff, for as long as the
/// partition is ours: the caller only finishes (commits) the offset once the copy is
/// acknowledged, so a message is never lost to a failed dead-letter write. (If the partition
/// is taken away meanwhile, the job is cancelled and the next owner handles the message.)
pub(super) async fn dead_letter(
    shared: &Shared,
    msg: &Record,
    (reason, error): Poison,
    attempts: u32,
) {
    let topic = dlq::dlq_topic(&msg.pattern);
    let origin = Origin {
        topic: &msg.pattern,
        partition: msg.partition,
        offset: msg.offset,
        reason,
        error: &error,
        attempts,
    };
    let mut wait = DLQ_BACKOFF.0;
    for write in 1u64.. {
        let hdrs = dlq::dead_letter_headers(&msg.headers, &origin);
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(hdrs);
        if let Some(key) = &msg.key {
            record = record.key(key);
        }
        if let Some(payload) = &msg.payload {
            record = record.payload(payload);
        }
        match shared.producer.send_awaited(record).await {
            Ok(()) => {
                crate::metrics::global().dead_lettered(&msg.pattern, reason.as_str());
                tracing::warn!(
                    pattern = &*msg.pattern,
                    partition = msg.partition,
                    offset = msg.offset,
                    reason = reason.as_str(),
                    attempts,
                    error = %error,
                    dlq = %topic,
                    "message dead-lettered"
                );
                return;
            }
            Err(e) => {
                tracing::error!(
                    pattern = &*msg.pattern,
                    partition = msg.partition,
                    offset = msg.offset,
                    reason = reason.as_str(),
                    dlq = %topic,
                    write,
                    error = %e,
                    "dead-letter write failed; the offset stays uncommitted and the write is retried"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(DLQ_BACKOFF.1);
            }
        }
    }
}
