//! The limit: a hand-written raw rdkafka request/reply client and echo server (bench-only
//! code), with the same producer/consumer settings as the generated transport, on their own
//! 3-partition topics. The echo server answers with the request's bytes and the headers a
//! NestJS caller needs (correlation id, is-disposed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;

pub const REQUEST_TOPIC: &str = "bench.raw.echo";
pub const REPLY_TOPIC: &str = "bench.raw.echo.reply";

fn common(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker);
    c
}

/// The producer settings of the generated transport: acks=all, idempotent, linger 0.
pub fn producer(broker: &str) -> FutureProducer {
    common(broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("raw producer")
}

/// A raw producer for events at librdkafka's defaults plus acks=all and idempotence.
pub fn event_producer(broker: &str) -> FutureProducer {
    common(broker)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("raw event producer")
}

pub async fn create_topics(broker: &str) {
    let admin: AdminClient<DefaultClientContext> = common(broker).create().expect("admin");
    let topics = [
        NewTopic::new(REQUEST_TOPIC, 3, TopicReplication::Fixed(1)),
        NewTopic::new(REPLY_TOPIC, 3, TopicReplication::Fixed(1)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics(&topics, &opts)
        .await
        .expect("create raw topics")
    {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                panic!("cannot create {t}: {e}");
            }
        }
    }
}

fn header<'a>(msg: &'a rdkafka::message::BorrowedMessage<'_>, key: &str) -> Option<&'a [u8]> {
    let hdrs = msg.headers()?;
    hdrs.iter().filter(|h| h.key == key).last()?.value
}

/// The echo servers' consumer: the request topic's group, from the earliest offset.
fn echo_consumer<C: FromClientConfig>(broker: &str, fetch_wait_ms: usize, group: &str) -> C {
    common(broker)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.min.bytes", "1")
        .create()
        .expect("raw consumer")
}

/// What a NestJS caller needs on a reply: its correlation id, and that it is the last one.
fn reply_headers(correlation_id: &[u8]) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "kafka_correlationId",
            value: Some(correlation_id),
        })
        .insert(Header {
            key: "kafka_nest-is-disposed",
            value: Some(&[0u8][..]),
        })
}

/// Echo server (runs in its own process): answers each request on its reply partition.
pub async fn serve(broker: &str, fetch_wait_ms: usize, group: &str) {
    let consumer: StreamConsumer = echo_consumer(broker, fetch_wait_ms, group);
    consumer.subscribe(&[REQUEST_TOPIC]).expect("subscribe");
    let consumer = Arc::new(consumer);
    let producer = producer(broker);
    let reader = consumer.clone();
    tokio::spawn(async move {
        loop {
            let msg = match reader.recv().await {
                Ok(m) => m,
                Err(_) => continue,
            };
            let (Some(id), Some(topic)) = (
                header(&msg, "kafka_correlationId"),
                header(&msg, "kafka_replyTopic"),
            ) else {
                continue;
            };
            let partition = header(&msg, "kafka_replyPartition")
                .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
                .unwrap_or(0);
            let topic = std::str::from_utf8(topic).unwrap_or(REPLY_TOPIC);
            let hdrs = reply_headers(id);
            let record = FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(msg.payload().unwrap_or_default())
                .headers(hdrs);
            // Enqueue without waiting for the ack; librdkafka delivers in the background.
            let _ = producer.send_result(record);
        }
    });
    wait_assigned(&*consumer).await;
}

/// The echo in the runtime's shape, to tell what that shape costs from what the runtime's code
/// does: a consumer thread polls and hands each request to a task of its own, which sends the
/// reply and waits for the broker's acknowledgement (the runtime finishes an offset only then).
/// Offsets are auto-committed as in [`serve`]; what it adds is the hand-over to a task (with
/// the copies of the request a task needs) and the wait for the acknowledgement.
pub async fn serve_acked(broker: &str, fetch_wait_ms: usize, group: &str) {
    let consumer: BaseConsumer = echo_consumer(broker, fetch_wait_ms, group);
    consumer.subscribe(&[REQUEST_TOPIC]).expect("subscribe");
    let consumer = Arc::new(consumer);
    let producer = producer(broker);
    let runtime = tokio::runtime::Handle::current();
    let poller = consumer.clone();
    std::thread::spawn(move || loop {
        let Some(Ok(msg)) = poller.poll(Duration::from_millis(100)) else {
            continue;
        };
        let (Some(id), Some(topic)) = (
            header(&msg, "kafka_correlationId").map(<[u8]>::to_vec),
            header(&msg, "kafka_replyTopic").map(<[u8]>::to_vec),
        ) else {
            continue;
        };
        let partition = header(&msg, "kafka_replyPartition")
            .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
            .unwrap_or(0);
        let payload = msg.payload().unwrap_or_default().to_vec();
        let producer = producer.clone();
        runtime.spawn(async move {
            let topic = std::str::from_utf8(&topic).unwrap_or(REPLY_TOPIC);
            let hdrs = reply_headers(&id);
            let record = FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&payload)
                .headers(hdrs);
            let _ = producer.send(record, Duration::from_secs(30)).await;
        });
    });
    wait_assigned(&*consumer).await;
}

async fn wait_assigned<C: Consumer<impl rdkafka::consumer::ConsumerContext>>(consumer: &C) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("raw echo server got no partitions");
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// The raw request/reply client: one producer, one consumer on reply partition 0.
#[derive(Clone)]
pub struct RawClient {
    producer: FutureProducer,
    pending: Pending,
    next: Arc<AtomicU64>,
    _reader: Arc<tokio::task::JoinHandle<()>>,
}

impl RawClient {
    pub async fn connect(broker: &str, fetch_wait_ms: usize) -> RawClient {
        let consumer: StreamConsumer = common(broker)
            .set("group.id", "bench-raw-client")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            .set("fetch.min.bytes", "1")
            .create()
            .expect("raw reply consumer");
        let (_, high) = consumer
            .fetch_watermarks(REPLY_TOPIC, 0, Duration::from_secs(10))
            .expect("watermarks");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(REPLY_TOPIC, 0, Offset::Offset(high))
            .unwrap();
        consumer.assign(&tpl).expect("assign");
        let pending: Pending = Arc::default();
        let routes = pending.clone();
        let reader = tokio::spawn(async move {
            loop {
                let Ok(msg) = consumer.recv().await else {
                    continue;
                };
                let Some(id) = header(&msg, "kafka_correlationId")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                else {
                    continue;
                };
                let tx = routes.lock().unwrap().remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.send(msg.payload().unwrap_or_default().to_vec());
                }
            }
        });
        RawClient {
            producer: producer(broker),
            pending,
            next: Arc::new(AtomicU64::new(1)),
            _reader: Arc::new(reader),
        }
    }

    pub async fn call(&self, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let id_text = id.to_string();
        let hdrs = OwnedHeaders::new()
            .insert(Header {
                key: "kafka_correlationId",
                value: Some(id_text.as_bytes()),
            })
            .insert(Header {
                key: "kafka_replyTopic",
                value: Some(REPLY_TOPIC.as_bytes()),
            })
            .insert(Header {
                key: "kafka_replyPartition",
                value: Some(&b"0"[..]),
            });
        let record = FutureRecord::<(), _>::to(REQUEST_TOPIC)
            .payload(payload)
            .headers(hdrs);
        if let Err((e, _)) = self.producer.send(record, timeout).await {
            self.pending.lock().unwrap().remove(&id);
            return Err(e.to_string());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                self.pending.lock().unwrap().remove(&id);
                Err("timeout".into())
            }
        }
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        if Arc::strong_count(&self._reader) == 1 {
            self._reader.abort();
        }
    }
}
