//! The caller's side: requests with correlated replies, events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::supervise::Supervision;
use super::{headers, unavailable, KafkaConfig};
use crate::transport::{BoxFuture, Call, Emit, RawReplies, Reply, Transport};
use crate::{Client, RpcError, ServiceContract};

/// Pending calls by the sequence number of their correlation id (the instance part is checked
/// when a reply arrives): no string per call.
type Pending = Arc<Mutex<HashMap<u64, Waiting>>>;

/// Replies a call may have waiting, unread, before it fails with `RESOURCE_EXHAUSTED`: every
/// call shares one reply consumer, so a caller that stops reading its stream cannot slow the
/// bus down; it is cut off instead of buffering without bound.
pub const MAX_BUFFERED_REPLIES: usize = 1024;

/// A call waiting for replies.
struct Waiting {
    tx: mpsc::Sender<Result<Reply, RpcError>>,
    /// How the call was cut off, when its buffer had no room for the news (too many replies
    /// unread, a second run, the reader gone): the stream ends with this error.
    cut: Cut,
    /// The handler run ([`headers::RUN`]) whose replies this call takes: the first to arrive.
    /// `Some(None)`: a server that names no run (NestJS).
    run: Option<Option<u64>>,
}

impl Waiting {
    /// Ends the call with `e`: as its next item, or (its buffer full) once it is read.
    fn end_with(&self, e: RpcError) {
        if let Err(mpsc::error::TrySendError::Full(Err(e))) = self.tx.try_send(Err(e)) {
            self.cut.set(e);
        }
    }
}

/// The error a call was cut off with, shared by its waiter and its stream.
#[derive(Clone, Default)]
struct Cut(Arc<Mutex<Option<RpcError>>>);

impl Cut {
    fn set(&self, e: RpcError) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    fn take(&self) -> Option<RpcError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A connection to the bus for callers: implements [`Transport`], so generated clients run
/// over it (`GraphServiceClient::new(kafka.client())`).
///
/// Cheap to clone. Dropping the last clone stops its reply reader.
#[derive(Clone)]
pub struct KafkaClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    /// Rebuilt when sends time out (a broker that lost its state rejects the old one).
    producer: Arc<super::producer::Renewable>,
    /// Events go through their own producer, created on the first emit: lingering
    /// [`EVENT_LINGER_MS`] batches them (emit throughput) without delaying requests, whose
    /// producer does not linger (latency).
    events: std::sync::OnceLock<Arc<super::producer::Renewable>>,
    events_config: rdkafka::ClientConfig,
    consumer: Arc<StreamConsumer>,
    pending: Pending,
    /// Reply topic → the partition this instance reads and asks replies on.
    reply_partitions: tokio::sync::Mutex<HashMap<String, i32>>,
    instance: u64,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    /// The reply reader's fate: once it failed, every call fails at once with its error.
    supervision: Supervision,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("brokers", &self.inner.config.brokers)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl KafkaClient {
    /// Connects, and starts reading the reply topics of `contracts` (more are added on first
    /// use). Fails with `UNAVAILABLE` within the request timeout if the brokers cannot be
    /// reached, refuse the TLS handshake, or a reply topic does not exist; with
    /// `UNAUTHENTICATED` as soon as they refuse the SASL login.
    pub async fn connect(
        config: &KafkaConfig,
        contracts: &[&ServiceContract],
    ) -> Result<Self, RpcError> {
        super::probe::require(config).await?;
        let mut producer_config = config.reliable_producer(&config.client_group());
        let mut events_config = producer_config.clone();
        events_config.set("linger.ms", EVENT_LINGER_MS);
        config.librdkafka.apply(&mut producer_config);
        config.librdkafka.apply(&mut events_config);
        let producer = Arc::new(
            super::producer::Renewable::new(producer_config)
                .map_err(|e| unavailable("cannot create a Kafka producer", e))?,
        );
        let mut consumer_config = config.common();
        consumer_config
            .set("client.id", config.client_group())
            .set("group.id", config.client_group())
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // A position the broker no longer has (retention, a re-created topic): read what
            // is there; replies that are not ours are dropped by correlation id anyway.
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.wait.max.ms",
                config.fetch_wait.as_millis().to_string(),
            )
            .set("fetch.min.bytes", "1");
        config.librdkafka.apply(&mut consumer_config);
        let consumer: StreamConsumer = consumer_config
            .create()
            .map_err(|e| unavailable("cannot create a Kafka consumer", e))?;
        let consumer = Arc::new(consumer);
        let pending: Pending = Arc::default();
        let instance = random_u64();
        let supervision = Supervision::new("the reply reader");
        let reader = tokio::spawn({
            let (supervision, consumer, pending) =
                (supervision.clone(), consumer.clone(), pending.clone());
            async move {
                let reading = read_replies(consumer, pending.clone(), instance);
                supervision.run_async(|| false, reading).await;
                if let Some(e) = supervision.failure() {
                    fail_pending(&pending, &e);
                }
            }
        });
        let client = KafkaClient {
            inner: Arc::new(Inner {
                config: config.clone(),
                producer,
                events: std::sync::OnceLock::new(),
                events_config,
                consumer,
                pending,
                reply_partitions: tokio::sync::Mutex::new(HashMap::new()),
                instance,
                next_id: AtomicU64::new(1),
                reader,
                supervision,
            }),
        };
        for contract in contracts {
            for topic in contract.reply_topics() {
                client.reply_partition(topic).await?;
            }
        }
        Ok(client)
    }

    /// Why this client can no longer receive replies (its reply reader panicked or ended), if
    /// so: every call then fails at once with this error (`UNAVAILABLE`).
    pub fn failure(&self) -> Option<RpcError> {
        self.inner.supervision.failure()
    }

    /// A [`Client`] over this connection with the configured request timeout.
    pub fn client(&self) -> Client {
        Client::new(Arc::new(self.clone())).with_timeout(self.inner.config.request_timeout)
    }

    /// Waits until every event and request produced so far is acknowledged (or `timeout`).
    pub fn flush(&self, timeout: Duration) -> Result<(), RpcError> {
        use rdkafka::producer::Producer as _;
        if let Some(events) = self.inner.events.get() {
            events
                .get()
                .flush(timeout)
                .map_err(|e| unavailable("flush failed", e))?;
        }
        self.inner
            .producer
            .get()
            .flush(timeout)
            .map_err(|e| unavailable("flush failed", e))
    }

    /// The events producer, created on first use.
    fn events(&self) -> Result<&Arc<super::producer::Renewable>, RpcError> {
        if let Some(events) = self.inner.events.get() {
            return Ok(events);
        }
        let created = super::producer::Renewable::new(self.inner.events_config.clone())
            .map_err(|e| unavailable("cannot create a Kafka producer for events", e))?;
        // A concurrent first emit may have won; its producer is used and ours dropped.
        Ok(self.inner.events.get_or_init(|| Arc::new(created)))
    }

    /// The partition of `topic` this instance reads replies from, assigning it on first use.
    async fn reply_partition(&self, topic: &str) -> Result<i32, RpcError> {
        let mut assigned = self.inner.reply_partitions.lock().await;
        if let Some(p) = assigned.get(topic) {
            return Ok(*p);
        }
        let consumer = self.inner.consumer.clone();
        let topic_owned = topic.to_owned();
        let timeout = self.inner.config.request_timeout;
        let instance = self.inner.instance;
        let brokers = self.inner.config.brokers.join(",");
        // Metadata and watermark calls block: keep them off the async workers.
        let (partition, high) = tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(Some(&topic_owned), timeout)
                .map_err(|e| unavailable(&format!("brokers {brokers} unreachable"), e))?;
            let count = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic_owned)
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            if count == 0 {
                return Err(RpcError::unavailable(format!(
                    "reply topic {topic_owned} does not exist; create the contract's topics first (ensure_topics / axion-gen topics)"
                )));
            }
            let partition = (instance % count as u64) as i32;
            let (_, high) = consumer
                .fetch_watermarks(&topic_owned, partition, timeout)
                .map_err(|e| unavailable(&format!("cannot read the end of {topic_owned}"), e))?;
            Ok::<_, RpcError>((partition, high))
        })
        .await
        .map_err(|e| RpcError::internal(format!("metadata task failed: {e}")))??;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(high))
            .map_err(|e| unavailable("bad reply partition", e))?;
        self.inner
            .consumer
            .incremental_assign(&tpl)
            .map_err(|e| unavailable(&format!("cannot read reply topic {topic}"), e))?;
        tracing::debug!(topic, partition, offset = high, "reading replies");
        assigned.insert(topic.to_owned(), partition);
        Ok(partition)
    }

    /// A new correlation id: its sequence number, and its text
    /// `<instance, 16 hex digits><sequence, at least 8 hex digits>` (formatted on the stack).
    fn correlation_id(&self) -> (u64, headers::StackText<32>) {
        let seq = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        (seq, correlation_text(self.inner.instance, seq))
    }
}

/// Removes a call from the pending map when its reply stream is dropped (done or timed out).
struct PendingGuard {
    pending: Pending,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.id);
        }
    }
}

struct Replies {
    rx: mpsc::Receiver<Result<Reply, RpcError>>,
    cut: Cut,
    _guard: PendingGuard,
}

impl futures_core::Stream for Replies {
    type Item = Result<Reply, RpcError>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match std::task::ready!(self.rx.poll_recv(cx)) {
            Some(item) => std::task::Poll::Ready(Some(item)),
            None => std::task::Poll::Ready(self.cut.take().map(Err)),
        }
    }
}

impl Transport for KafkaClient {
    fn send(&self, call: Call) -> BoxFuture<'_, Result<RawReplies, RpcError>> {
        Box::pin(async move {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let partition = self.reply_partition(call.reply_topic).await?;
            let (seq, id) = self.correlation_id();
            let (tx, rx) = mpsc::channel(MAX_BUFFERED_REPLIES);
            let cut = Cut::default();
            lock(&self.inner.pending).insert(
                seq,
                Waiting {
                    tx,
                    cut: cut.clone(),
                    run: None,
                },
            );
            let guard = PendingGuard {
                pending: self.inner.pending.clone(),
                id: seq,
            };
            let partition_text = headers::StackText::<12>::format(format_args!("{partition}"));
            let hdrs = headers::owned(&call.headers, 3);
            let hdrs = headers::with(hdrs, headers::CORRELATION_ID, id.as_bytes());
            let hdrs = headers::with(hdrs, headers::REPLY_TOPIC, call.reply_topic.as_bytes());
            let hdrs = headers::with(hdrs, headers::REPLY_PARTITION, partition_text.as_bytes());
            let mut record = FutureRecord::<[u8], _>::to(call.pattern)
                .payload(&call.payload)
                .headers(hdrs);
            if let Some(key) = &call.key {
                record = record.key(key.as_slice());
            }
            self.inner
                .producer
                .send(record)
                .await
                .map_err(|e| unavailable(&format!("cannot send to {}", call.pattern), e))?;
            Ok(Box::pin(Replies {
                rx,
                cut,
                _guard: guard,
            }) as RawReplies)
        })
    }

    fn emit(&self, event: Emit) -> BoxFuture<'_, Result<(), RpcError>> {
        Box::pin(async move {
            let pattern = event.pattern;
            let mut record = FutureRecord::<[u8], _>::to(pattern).payload(&event.payload);
            if !event.headers.is_empty() {
                record = record.headers(headers::owned(&event.headers, 0));
            }
            if let Some(key) = &event.key {
                record = record.key(key.as_slice());
            }
            // Inside a handler served exactly-once: in the transaction of its message.
            if let Some(transactional) = super::transaction::current() {
                let delivery = transactional
                    .send_result(record)
                    .map_err(|(e, _)| unavailable(&format!("cannot emit on {pattern}"), e))?;
                return match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(unavailable(&format!("cannot emit on {pattern}"), e)),
                    Err(_) => Err(RpcError::unavailable(format!(
                        "cannot emit on {pattern}: the transaction's producer went away"
                    ))),
                };
            }
            self.events()?
                .send(record)
                .await
                .map_err(|e| unavailable(&format!("cannot emit on {pattern}"), e))
        })
    }
}

/// `linger.ms` of the events producer (librdkafka's default): events are batched for up to
/// this long, which multiplies emit throughput under load.
const EVENT_LINGER_MS: &str = "5";

/// Routes replies to their pending calls by correlation id; ignores the rest (replies to
/// other instances sharing the partition, or to calls that already timed out).
async fn read_replies(consumer: Arc<StreamConsumer>, pending: Pending, instance: u64) {
    let mut troubled_until: Option<std::time::Instant> = None;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = check.tick() => {
                if troubled_until.is_some_and(|t| std::time::Instant::now() < t) {
                    let c = consumer.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        super::recovery::rewind_past_end(&*c, false, super::OffsetReset::Earliest)
                    })
                    .await;
                }
                continue;
            }
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "reply consumer error");
                troubled_until = Some(std::time::Instant::now() + super::recovery::WINDOW);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let hdrs = msg.headers();
        let Some(id) =
            headers::get(hdrs, headers::CORRELATION_ID).and_then(|v| correlation_seq(v, instance))
        else {
            continue;
        };
        let err = headers::get(hdrs, headers::NEST_ERR).map(crate::RpcError::from_json);
        let disposed = err.is_some() || headers::get(hdrs, headers::NEST_IS_DISPOSED).is_some();
        let mut map = lock(&pending);
        let Some(waiting) = map.get_mut(&id) else {
            continue;
        };
        let run = headers::get(hdrs, headers::RUN)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        if *waiting.run.get_or_insert(run) != run {
            // A second run of the handler (a stream cut off by a rebalance and run again by
            // the next owner): its items would repeat the first run's.
            let e = RpcError::new(
                crate::codes::ABORTED,
                "the server ran the request again (after a rebalance) while its replies were arriving: the stream is cut off rather than repeat items; call again",
            );
            waiting.end_with(e);
            map.remove(&id);
            continue;
        }
        let reply = |payload: &[u8]| Reply {
            payload: payload.to_vec(),
            headers: headers::metadata(hdrs),
        };
        let item = match (err, msg.payload()) {
            (Some(e), _) => Some(Err(e)),
            (None, Some(value)) => Some(Ok(reply(value))),
            // A disposed marker without a value ends the stream without an item.
            (None, None) if disposed => None,
            (None, None) => Some(Ok(reply(&[]))),
        };
        let delivered = match item {
            None => true,
            Some(item) => match waiting.tx.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        correlation_id = %String::from_utf8_lossy(
                            headers::get(hdrs, headers::CORRELATION_ID).unwrap_or_default()
                        ),
                        limit = MAX_BUFFERED_REPLIES,
                        "a call's replies are not being read; the call is cut off"
                    );
                    waiting.cut.set(RpcError::new(
                        crate::codes::RESOURCE_EXHAUSTED,
                        format!(
                            "more than {MAX_BUFFERED_REPLIES} replies waited unread; the rest of the stream was dropped"
                        ),
                    ));
                    false
                }
                // The caller went away.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        };
        if disposed || !delivered {
            map.remove(&id);
        }
    }
}

/// The pending calls; a reader that panicked holding them cannot make them unusable.
fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends every waiting call with `e` (the reply reader is gone: no reply will come).
fn fail_pending(pending: &Pending, e: &RpcError) {
    for (_, waiting) in lock(pending).drain() {
        waiting.end_with(e.clone());
    }
}

fn correlation_text(instance: u64, seq: u64) -> headers::StackText<32> {
    headers::StackText::format(format_args!("{instance:016x}{seq:08x}"))
}

/// The sequence number of one of this instance's correlation ids; `None` for anything else
/// (another instance's, or not one of ours at all).
fn correlation_seq(id: &[u8], instance: u64) -> Option<u64> {
    let text = std::str::from_utf8(id).ok()?;
    let seq = u64::from_str_radix(text.get(16..)?, 16).ok()?;
    // Exactly the text we would have sent (rejects other instances, case and sign variants).
    (correlation_text(instance, seq).as_bytes() == id).then_some(seq)
}

/// `UnboundedReceiver` as a `Stream`.
#[cfg(test)]
mod correlation_tests {
    use super::{correlation_seq, correlation_text};

    #[test]
    fn ids_round_trip_and_foreign_ids_are_rejected() {
        let instance = 0x0123_4567_89ab_cdef;
        for seq in [1, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let text = correlation_text(instance, seq);
            assert_eq!(correlation_seq(text.as_bytes(), instance), Some(seq));
            assert_eq!(correlation_seq(text.as_bytes(), instance + 1), None);
        }
        assert_eq!(
            std::str::from_utf8(correlation_text(instance, 2).as_bytes()).unwrap(),
            "0123456789abcdef00000002"
        );
        for foreign in [
            &b"0123456789ABCDEF00000002"[..],
            b"0123456789abcdef+0000002",
            b"0123456789abcdef2",
            b"0123456789abcdef",
            b"",
            b"\xff\xfe",
        ] {
            assert_eq!(correlation_seq(foreign, instance), None, "{foreign:?}");
        }
    }
}
