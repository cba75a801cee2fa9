//! Raw Kafka records for reliability tests: what a broken or foreign peer would send, and a
//! reader for dead-letter and reply topics.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

pub fn producer(address: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("message.timeout.ms", "20000")
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer")
}

/// Produces one record (headers in order, `None` payload for a tombstone) and waits for the ack.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    headers: &[(&str, &[u8])],
    payload: Option<&[u8]>,
) -> (i32, i64) {
    let headers: Vec<(&[u8], Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), Some(*v)))
        .collect();
    send_raw(producer, topic, partition, &headers, payload).await
}

/// A consumer assigned (no group membership) to partitions `0..partitions` of `topic`, from
/// the start.
pub fn reader(address: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Reads every partition of `topic` from the start until `want` records arrived (bounded).
pub fn read_all(
    address: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    within: Duration,
) -> Vec<OwnedMessage> {
    let consumer = reader(address, topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

/// Every record of `topic` up to its current end, each once: read until every offset below
/// the end of each partition arrived (a broker that hands a record out twice cannot make
/// another look missing). Bounded by `within`.
pub fn read_to_end(
    address: &str,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> Vec<OwnedMessage> {
    let ends = ends(address, topic, partitions);
    let want: i64 = ends.iter().sum();
    let consumer = reader(address, topic, partitions);
    let mut seen = std::collections::BTreeMap::new();
    let deadline = Instant::now() + within;
    while (seen.len() as i64) < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let at = (m.partition(), m.offset());
            if m.offset() < ends[m.partition() as usize] {
                seen.entry(at).or_insert_with(|| m.detach());
            }
        }
    }
    seen.into_values().collect()
}

/// The value of header `key` of `msg` as text.
pub fn header(msg: &OwnedMessage, key: &str) -> Option<String> {
    header_bytes(msg, key).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Every header of `msg` as bytes (keys of any bytes; rdkafka's own reader panics on a key
/// that is not UTF-8).
pub fn headers(msg: &OwnedMessage) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    msg.headers()
        .map(|h| {
            axion_runtime::kafka::headers::raw(h.as_borrowed())
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// Produces one record whose header keys are any bytes (`None`: a null value), and waits for
/// the ack.
pub async fn send_raw(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    headers: &[(&[u8], Option<&[u8]>)],
    payload: Option<&[u8]>,
) -> (i32, i64) {
    let hdrs = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        axion_runtime::kafka::headers::with_raw(h, key, *value)
    });
    let mut record = FutureRecord::<(), [u8]>::to(topic).headers(hdrs);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    if let Some(p) = partition {
        record = record.partition(p);
    }
    let delivery = producer
        .send(record, Duration::from_secs(20))
        .await
        .unwrap_or_else(|(e, _)| panic!("cannot produce to {topic}: {e}"));
    (delivery.partition, delivery.offset)
}

/// Like [`read_all`], then keeps reading for `settle` more: extra records (duplicates) show up
/// instead of being left unread.
pub fn read_settled(
    address: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    within: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let mut out = read_all(address, topic, partitions, want, within);
    if out.len() >= want {
        let more = read_all(address, topic, partitions, want + 1, settle);
        out = if more.len() > out.len() { more } else { out };
    }
    out
}

/// The value of header `key` of `msg`, as bytes.
pub fn header_bytes(msg: &OwnedMessage, key: &str) -> Option<Vec<u8>> {
    headers(msg)
        .into_iter()
        .rfind(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.unwrap_or_default())
}

/// The committed positions of `group` in `topic`'s partitions (`-1`: none).
pub fn committed(address: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match c.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// The end offsets of `topic`'s partitions.
pub fn ends(address: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Payloads of `topic` as a group reader with `isolation` (`read_committed` or
/// `read_uncommitted`) sees them from the start, until 3 s pass without a record (bounded:
/// stops after 60 s however much arrives).
pub fn read_isolated(address: &str, topic: &str, isolation: &str) -> Vec<Vec<u8>> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", format!("reader-{isolation}-{topic}"))
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    reader.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    let (mut idle, deadline) = (0, Instant::now() + Duration::from_secs(60));
    while idle < 15 && Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = 0;
                seen.push(m.payload().unwrap_or_default().to_vec());
            }
            _ => idle += 1,
        }
    }
    seen
}
