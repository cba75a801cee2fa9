//! Dead letters a user can act on: list a pattern's `<pattern>.dlq` with the reason each
//! message is there, and re-drive selected ones to the topic they came from.
//!
//! A re-driven copy keeps the original key, payload and headers (the `axion-dlq-*` headers
//! dropped) and gains `axion-dlq-redriven-from: <dlq topic>/<partition>/<offset>`, so a handler
//! or an operator can tell it from the first delivery. The dead-letter topic itself is left
//! as it is (append-only): re-driving the same letter twice sends it twice.
//!
//! `examples/dead_letters.rs` is a small command line over this API
//! (`cargo run --example dead_letters -- list <pattern>`, `... redrive <pattern> <offset>...`).

use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::dlq::{
    dlq_topic, DLQ_ATTEMPTS, DLQ_ERROR, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC,
};
use super::{headers, unavailable, KafkaConfig};
use crate::{Metadata, RpcError};

/// Header of a re-driven copy: where in the dead-letter topic it came from.
pub const DLQ_REDRIVEN_FROM: &str = "axion-dlq-redriven-from";

/// One message of a dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter topic (`<pattern>.dlq`).
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there: what [`redrive`] selections name.
    pub offset: i64,
    /// When it was dead-lettered.
    pub timestamp: Option<SystemTime>,
    /// `axion-dlq-reason` (e.g. `handler-failed`, `undecodable`).
    pub reason: String,
    /// `axion-dlq-error`: the error text.
    pub error: String,
    /// `axion-dlq-attempts`: how many times the handler ran.
    pub attempts: u32,
    /// `axion-dlq-topic`: the topic it was read from (where a re-drive sends it).
    pub origin_topic: String,
    /// `axion-dlq-partition` and `axion-dlq-offset` there.
    pub origin: Option<(i32, i64)>,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original payload.
    pub payload: Option<Vec<u8>>,
    /// The original headers (without the `axion-dlq-*` ones).
    pub headers: Metadata,
    /// [`DLQ_REDRIVEN_FROM`] of a message that was re-driven once already and failed again.
    pub redriven_from: Option<String>,
    /// The original headers exactly as written, when a key is not UTF-8 (an
    /// `unreadable-record`): `headers` then has those keys decoded lossily, and a re-drive
    /// sends these instead (key, `None` for a null value).
    pub raw_headers: Option<Vec<headers::RawHeader>>,
}

impl DeadLetter {
    fn read(msg: &rdkafka::message::BorrowedMessage<'_>, pattern: &str) -> DeadLetter {
        let all = headers::metadata(msg.headers());
        let text = |name: &str| all.get_str(name).unwrap_or_default().to_owned();
        let number = |name: &str| all.get_str(name).and_then(|v| v.parse::<i64>().ok());
        let origin_topic = all.get_str(DLQ_TOPIC).unwrap_or(pattern).to_owned();
        DeadLetter {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: headers::timestamp(msg),
            reason: text(DLQ_REASON),
            error: text(DLQ_ERROR),
            attempts: number(DLQ_ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            origin: number(DLQ_PARTITION)
                .and_then(|p| i32::try_from(p).ok())
                .zip(number(DLQ_OFFSET)),
            origin_topic,
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers: all
                .iter()
                .filter(|(k, _)| !k.starts_with("axion-dlq-"))
                .collect(),
            redriven_from: all.get_str(DLQ_REDRIVEN_FROM).map(str::to_owned),
            raw_headers: msg
                .headers()
                .filter(|h| !headers::keys_are_text(Some(*h)))
                .map(|h| {
                    headers::raw(h)
                        .filter(|(k, _)| !k.starts_with(b"axion-dlq-"))
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect()
                }),
        }
    }
}

/// Every dead letter of `pattern` (its `<pattern>.dlq`, all partitions, oldest first within
/// a partition) up to the end the topic had when called; at most `limit`. Reads without a
/// consumer group: nothing is committed, nothing is taken from other readers.
pub async fn list(
    config: &KafkaConfig,
    pattern: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, RpcError> {
    let mut c = config.common();
    c.set(
        "group.id",
        format!("{}-dead-letters", config.client_group()),
    )
    .set(
        "client.id",
        format!("{}-dead-letters", config.client_group()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.partition.eof", "false");
    config.librdkafka.apply(&mut c);
    let consumer: BaseConsumer = c
        .create()
        .map_err(|e| unavailable("cannot create a Kafka consumer", e))?;
    let topic = dlq_topic(pattern);
    let pattern = pattern.to_owned();
    let timeout = config.request_timeout;
    tokio::task::spawn_blocking(move || read_to_end(&consumer, &topic, &pattern, limit, timeout))
        .await
        .map_err(|e| RpcError::internal(format!("dead-letter reader failed: {e}")))?
}

fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    pattern: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, RpcError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unavailable(&format!("cannot read the metadata of {topic}"), e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(RpcError::not_found(format!("{topic} does not exist")));
    }
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| unavailable(&format!("cannot read the ends of {topic}/{p}"), e))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| unavailable("bad partition", e))?;
        }
    }
    let mut letters = Vec::new();
    if ends.is_empty() {
        return Ok(letters);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| unavailable(&format!("cannot read {topic}"), e))?;
    let deadline = Instant::now() + timeout.max(Duration::from_secs(5));
    while !ends.is_empty() && letters.len() < limit {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RpcError::deadline_exceeded(format!(
                "{topic} not read to its end within {} ms",
                timeout.as_millis()
            )));
        }
        match consumer.poll(left.min(Duration::from_millis(200))) {
            Some(Ok(msg)) => {
                let (p, offset) = (msg.partition(), msg.offset());
                if ends.get(&p).is_some_and(|end| offset < *end) {
                    letters.push(DeadLetter::read(&msg, pattern));
                }
                if ends.get(&p).is_some_and(|end| offset + 1 >= *end) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(unavailable(&format!("cannot read {topic}"), e)),
            None => {}
        }
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    letters.truncate(limit);
    Ok(letters)
}

/// Sends each of `letters` back to its origin topic (key, payload and headers kept — byte for
/// byte where [`DeadLetter::raw_headers`] has them — plus [`DLQ_REDRIVEN_FROM`]) and waits until the broker has each one. Returns how many were
/// sent; on a failure, the error says how many went before it.
pub async fn redrive(config: &KafkaConfig, letters: &[DeadLetter]) -> Result<usize, RpcError> {
    let mut c = config.reliable_producer(&format!("{}-redrive", config.client_group()));
    config.librdkafka.apply(&mut c);
    let producer: FutureProducer = c
        .create()
        .map_err(|e| unavailable("cannot create a Kafka producer", e))?;
    for (sent, letter) in letters.iter().enumerate() {
        let from = format!("{}/{}/{}", letter.topic, letter.partition, letter.offset);
        let original = match &letter.raw_headers {
            Some(raw) => raw.iter().fold(
                OwnedHeaders::new_with_capacity(raw.len() + 1),
                |h, (k, v)| headers::with_raw(h, k, v.as_deref()),
            ),
            None => headers::owned(&letter.headers, 1),
        };
        let hdrs: OwnedHeaders = headers::with(original, DLQ_REDRIVEN_FROM, from.as_bytes());
        let mut record = FutureRecord::<[u8], [u8]>::to(&letter.origin_topic).headers(hdrs);
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload);
        }
        producer
            .send(record, config.request_timeout)
            .await
            .map_err(|(e, _)| {
                unavailable(
                    &format!(
                        "re-driving {from} to {} failed after {sent} sent",
                        letter.origin_topic
                    ),
                    e,
                )
            })?;
    }
    Ok(letters.len())
}
