//! The serving side: a consumer group per service, replies NestJS understands, at-least-once.
//!
//! Delivery: a message's offset is committed only after its handler finished and its replies
//! (or its dead-letter copy) were acknowledged by the broker, and never past an unfinished
//! message of the same partition. A crash, `kill -9` or lost membership therefore redelivers
//! every message whose handler may have run but whose outcome was not committed: handlers see
//! each request at least once. Non-idempotent handlers opt into
//! [de-duplication by correlation id](super::dedup).
//!
//! Concurrency: at most `max_in_flight` messages at once (`KAFKA_MAX_IN_FLIGHT`), at most
//! `max_in_flight_per_partition` of them from one partition
//! (`KAFKA_MAX_IN_FLIGHT_PER_PARTITION`; 1 keeps each partition in order). Messages of a
//! partition at its limit wait in that partition's lane, in order, while other partitions go
//! on; waiting messages count against the global limit, so memory stays bounded.
//! Handlers may take longer than the session timeout: librdkafka heartbeats from its own
//! thread, so a slow handler does not make the member leave the group (only a handler slower
//! than `max.poll.interval.ms`, 5 minutes, would).
//!
//! Poison messages (see [`super::dlq`]) get an error reply or go to `<pattern>.dlq`.
//!
//! Broker trouble: consumer errors are logged and retried; afterwards a partition that ends
//! before our position is read from the start (a broker that lost its state), and the reply
//! producer is rebuilt when its sends time out.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{watch, Semaphore};

use super::dedup::{self, DedupStore, StoredReplies};
use super::dlq::{self, Poison, PoisonReason, ReplyTo};
use super::producer::Renewable;
use super::{headers, unavailable, KafkaConfig};
use crate::transport::{Handler, Incoming};
use crate::RpcError;

/// Serves a [`Handler`] (a generated `*Server`) on Kafka.
#[derive(Debug)]
pub struct KafkaServer;

/// A running server. [`ServerHandle::shutdown`] stops it gracefully; dropping it stops it
/// without waiting.
#[derive(Debug)]
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<Stats>,
    group: String,
}

/// Membership counters of a server, shared with its consumer's rebalance callbacks.
#[derive(Debug, Default)]
struct Stats {
    assigned: AtomicBool,
    assignments: AtomicU64,
    revocations: AtomicU64,
}

impl ServerHandle {
    /// Whether the consumer currently holds partitions (the service is ready).
    pub fn is_assigned(&self) -> bool {
        self.stats.assigned.load(Ordering::SeqCst)
    }

    /// How many times partitions were assigned to this server (1 after a quiet start; each
    /// rebalance that gives it partitions adds one).
    pub fn assignments(&self) -> u64 {
        self.stats.assignments.load(Ordering::SeqCst)
    }

    /// How many times partitions were taken from this server (rebalances, lost membership).
    pub fn revocations(&self) -> u64 {
        self.stats.revocations.load(Ordering::SeqCst)
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Waits until the consumer holds partitions, up to `timeout`. Returns whether it does.
    pub async fn wait_assigned(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_assigned() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_assigned()
    }

    /// Stops consuming, lets in-flight handlers finish (and their replies go out), commits
    /// their offsets, flushes the producer and leaves the group.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Offsets in flight per partition: commit only below the lowest unfinished one.
#[derive(Default)]
struct Tracker {
    parts: Mutex<HashMap<(String, i32), Part>>,
}

#[derive(Default)]
struct Part {
    in_flight: BTreeSet<i64>,
    next: i64,
    committed: i64,
}

impl Tracker {
    fn begin(&self, topic: &str, partition: i32, offset: i64) {
        let mut parts = self.parts.lock().expect("tracker");
        let part = parts.entry((topic.to_owned(), partition)).or_default();
        part.in_flight.insert(offset);
        part.next = part.next.max(offset + 1);
    }

    fn finish(&self, topic: &str, partition: i32, offset: i64) {
        let mut parts = self.parts.lock().expect("tracker");
        if let Some(part) = parts.get_mut(&(topic.to_owned(), partition)) {
            part.in_flight.remove(&offset);
        }
    }

    /// Offsets that can be committed now (and marks them committed).
    fn committable(&self, only: Option<&TopicPartitionList>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let mut parts = self.parts.lock().expect("tracker");
        for ((topic, partition), part) in parts.iter_mut() {
            if let Some(only) = only {
                if only.find_partition(topic, *partition).is_none() {
                    continue;
                }
            }
            let upto = part.in_flight.first().copied().unwrap_or(part.next);
            if upto > part.committed
                && tpl
                    .add_partition_offset(topic, *partition, Offset::Offset(upto))
                    .is_ok()
            {
                part.committed = upto;
            }
        }
        tpl
    }

    fn forget(&self, revoked: &TopicPartitionList) {
        let mut parts = self.parts.lock().expect("tracker");
        for e in revoked.elements() {
            parts.remove(&(e.topic().to_owned(), e.partition()));
        }
    }
}

struct ServerContext {
    tracker: Arc<Tracker>,
    stats: Arc<Stats>,
}

impl ClientContext for ServerContext {}

impl ConsumerContext for ServerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            // Commit what finished before the partitions move, so the next owner does not
            // redo it; unfinished offsets are redelivered (at-least-once).
            let done = self.tracker.committable(Some(revoked));
            if done.count() > 0 {
                if let Err(e) = consumer.commit(&done, CommitMode::Sync) {
                    tracing::warn!(error = %e, "commit before rebalance failed");
                }
            }
            self.tracker.forget(revoked);
            self.stats.revocations.fetch_add(1, Ordering::SeqCst);
            tracing::info!(partitions = revoked.count(), "partitions revoked");
            self.stats.assigned.store(false, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                self.stats.assignments.fetch_add(1, Ordering::SeqCst);
                self.stats.assigned.store(tpl.count() > 0, Ordering::SeqCst);
            }
            Rebalance::Revoke(_) => {
                let still = consumer
                    .assignment()
                    .map(|a| a.count() > 0)
                    .unwrap_or(false);
                self.stats.assigned.store(still, Ordering::SeqCst);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

struct Shared {
    handler: Box<dyn Handler>,
    producer: Arc<Renewable>,
    tracker: Arc<Tracker>,
    reply_timeout: Duration,
    dedup: Option<Arc<dyn DedupStore>>,
    max_message_bytes: usize,
    per_partition: usize,
}

/// A received message and its slot of the global in-flight limit.
type Queued = (OwnedMessage, tokio::sync::OwnedSemaphorePermit);

/// Starts the handlers of one partition in order, at most `per_partition` at once.
async fn lane(shared: Arc<Shared>, mut queue: tokio::sync::mpsc::UnboundedReceiver<Queued>) {
    let slots = Arc::new(Semaphore::new(shared.per_partition));
    while let Some((msg, permit)) = queue.recv().await {
        let slot = slots.clone().acquire_owned().await.expect("lane open");
        let shared = shared.clone();
        tokio::spawn(async move {
            handle(&shared, &msg).await;
            shared
                .tracker
                .finish(msg.topic(), msg.partition(), msg.offset());
            drop(slot);
            drop(permit);
        });
    }
}

impl KafkaServer {
    /// Joins the service's consumer group (`<service>-server`, or `<configured>-server`),
    /// subscribes to its patterns and serves them until the handle is shut down.
    pub async fn start(
        config: &KafkaConfig,
        handler: impl Handler,
    ) -> Result<ServerHandle, RpcError> {
        Self::start_inner(config, Box::new(handler), None).await
    }

    /// Like [`KafkaServer::start`], with de-duplication by correlation id: a redelivered
    /// request whose replies are in `store` gets them re-sent without calling the handler
    /// (see [`super::dedup`]; across a crash only a durable store helps).
    pub async fn start_with_dedup(
        config: &KafkaConfig,
        handler: impl Handler,
        store: Arc<dyn DedupStore>,
    ) -> Result<ServerHandle, RpcError> {
        Self::start_inner(config, Box::new(handler), Some(store)).await
    }

    async fn start_inner(
        config: &KafkaConfig,
        handler: Box<dyn Handler>,
        dedup: Option<Arc<dyn DedupStore>>,
    ) -> Result<ServerHandle, RpcError> {
        let contract = handler.contract();
        let group = match &config.server_group {
            Some(g) => format!("{g}-server"),
            None => contract.server_group.to_owned(),
        };
        let tracker = Arc::new(Tracker::default());
        let stats = Arc::new(Stats::default());
        let consumer: StreamConsumer<ServerContext> = config
            .common()
            .set("group.id", &group)
            .set("client.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                config.fetch_wait.as_millis().to_string(),
            )
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 3)
                    .max(100)
                    .to_string(),
            )
            .create_with_context(ServerContext {
                tracker: tracker.clone(),
                stats: stats.clone(),
            })
            .map_err(|e| unavailable("cannot create a Kafka consumer", e))?;
        let topics: Vec<&str> = contract.request_topics().collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| unavailable("cannot subscribe", e))?;
        let mut producer_config = config.common();
        producer_config
            .set("client.id", &group)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.send.max.retries", config.send_retries.to_string())
            .set(
                "retry.backoff.ms",
                config.retry_backoff.as_millis().to_string(),
            )
            .set(
                "message.timeout.ms",
                config.request_timeout.as_millis().max(1000).to_string(),
            )
            // Room for a dead-letter copy of an oversized message.
            .set(
                "message.max.bytes",
                (config.max_message_bytes.saturating_mul(2) + 65_536)
                    .clamp(1_000_000, 1_000_000_000)
                    .to_string(),
            );
        let producer = Arc::new(
            Renewable::new(producer_config)
                .map_err(|e| unavailable("cannot create a Kafka producer", e))?,
        );
        let shared = Arc::new(Shared {
            handler,
            producer,
            tracker,
            reply_timeout: config.request_timeout,
            dedup,
            max_message_bytes: config.max_message_bytes,
            per_partition: config.max_in_flight_per_partition.min(config.max_in_flight),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            Arc::new(consumer),
            shared,
            stop_rx,
            config.max_in_flight,
        ));
        tracing::info!(group = %group, patterns = ?topics, "serving");
        Ok(ServerHandle {
            stop,
            task: Some(task),
            stats,
            group,
        })
    }
}

async fn run(
    consumer: Arc<StreamConsumer<ServerContext>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    max_in_flight: usize,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut lanes: HashMap<(String, i32), tokio::sync::mpsc::UnboundedSender<Queued>> =
        HashMap::new();
    let mut commit_tick = tokio::time::interval(Duration::from_millis(100));
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After consumer errors: check now and then that no partition ends before our position.
    let mut troubled_until: Option<Instant> = None;
    let mut last_check = Instant::now();
    loop {
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore open"),
        };
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = commit_tick.tick() => {
                commit(&consumer, &shared.tracker, CommitMode::Async);
                if troubled_until.is_some_and(|t| Instant::now() < t)
                    && last_check.elapsed() >= Duration::from_secs(1)
                {
                    last_check = Instant::now();
                    let c = consumer.clone();
                    if let Ok(rewound) = tokio::task::spawn_blocking(move || {
                        super::recovery::rewind_past_end(&*c, true)
                    })
                    .await
                    {
                        // Offsets of the old partition mean nothing in the new one.
                        shared.tracker.forget(&rewound);
                    }
                }
                continue;
            }
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                troubled_until = Some(Instant::now() + super::recovery::WINDOW);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared
            .tracker
            .begin(msg.topic(), msg.partition(), msg.offset());
        // Unbounded send: the global permit travelling with the message bounds each lane.
        let key = (msg.topic().to_owned(), msg.partition());
        let queue = lanes.entry(key).or_insert_with(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(lane(shared.clone(), rx));
            tx
        });
        if let Err(e) = queue.send((msg, permit)) {
            tracing::error!("partition lane closed; the message will be redelivered");
            drop(e);
        }
    }
    // Graceful stop: let in-flight handlers finish (bounded), commit, flush, leave.
    let drain = permits.acquire_many(max_in_flight as u32);
    if tokio::time::timeout(shared.reply_timeout * 3, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight handlers did not finish in time; their messages will be redelivered"
        );
    }
    drop(lanes);
    commit(&consumer, &shared.tracker, CommitMode::Sync);
    let _ = shared.producer.get().flush(shared.reply_timeout);
    consumer.unsubscribe();
    tracing::info!("server stopped");
}

fn commit(consumer: &StreamConsumer<ServerContext>, tracker: &Tracker, mode: CommitMode) {
    let tpl = tracker.committable(None);
    if tpl.count() > 0 {
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

async fn handle(shared: &Shared, msg: &OwnedMessage) {
    let started = Instant::now();
    let hdrs = msg.headers();
    let reply_to = match dlq::reply_to(hdrs) {
        Ok(r) => r,
        Err(poison) => return dead_letter(shared, msg, poison).await,
    };
    let payload = msg.payload().unwrap_or_default();
    if let Err((reason, error)) = dlq::check_payload(hdrs, payload, shared.max_message_bytes) {
        return match &reply_to {
            Some(to) => {
                tracing::warn!(
                    pattern = msg.topic(),
                    correlation_id = %to.correlation_id,
                    partition = msg.partition(),
                    offset = msg.offset(),
                    reason = reason.as_str(),
                    error = %error,
                    "poison request rejected"
                );
                let e = RpcError::invalid_argument(error).with_detail("reason", reason.as_str());
                if let Err(e) = send_reply(shared, to, Some(Err(e)), true).await {
                    dead_letter(shared, msg, (PoisonReason::ReplyUndeliverable, e)).await;
                }
            }
            None => dead_letter(shared, msg, (reason, error)).await,
        };
    }
    let key = reply_to
        .as_ref()
        .map(|to| dedup::key(msg.topic(), &to.correlation_id));
    if let (Some(store), Some(key), Some(to)) = (&shared.dedup, &key, &reply_to) {
        if let Some(stored) = store.get(key) {
            tracing::info!(
                pattern = msg.topic(),
                correlation_id = %to.correlation_id,
                partition = msg.partition(),
                offset = msg.offset(),
                replies = stored.len(),
                "duplicate request: stored replies re-sent, handler not called"
            );
            if let Err(e) = send_all(shared, to, stored).await {
                dead_letter(shared, msg, (PoisonReason::ReplyUndeliverable, e)).await;
            }
            return;
        }
    }
    let incoming = Incoming {
        pattern: msg.topic().to_owned(),
        payload: payload.to_vec(),
        correlation_id: reply_to.as_ref().map(|to| to.correlation_id.clone()),
    };
    let mut replies = shared.handler.handle(incoming);
    let outcome: Result<usize, RpcError> = match &reply_to {
        None => {
            let mut failure = None;
            while let Some(item) = replies.next().await {
                if let Err(e) = item {
                    failure = Some(e);
                }
            }
            match failure {
                // An event that does not decode (or that its handler calls invalid) would
                // fail the same way forever: park it in the dead-letter topic.
                Some(e) if e.is(crate::codes::INVALID_ARGUMENT) => {
                    let error = e.to_string();
                    return dead_letter(shared, msg, (PoisonReason::Undecodable, error)).await;
                }
                Some(e) => Err(e),
                None => Ok(0),
            }
        }
        Some(to) => {
            let (result, delivered) = match (&shared.dedup, &key) {
                (Some(store), Some(key)) => {
                    // Store before replying: a redelivery after the reply went out finds it.
                    let mut all: StoredReplies = Vec::new();
                    while let Some(item) = replies.next().await {
                        let stop = item.is_err();
                        all.push(item);
                        if stop {
                            break;
                        }
                    }
                    store.put(key, &all);
                    let result = summarize(&all);
                    (result, send_all(shared, to, all).await)
                }
                _ => stream_replies(shared, to, replies).await,
            };
            if let Err(e) = delivered {
                return dead_letter(shared, msg, (PoisonReason::ReplyUndeliverable, e)).await;
            }
            result
        }
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let correlation_id = reply_to
        .as_ref()
        .map_or("-", |to| to.correlation_id.as_str());
    match outcome {
        Ok(replies) => tracing::info!(
            pattern = msg.topic(),
            correlation_id,
            partition = msg.partition(),
            offset = msg.offset(),
            latency_ms,
            replies,
            outcome = "ok",
            "handled"
        ),
        Err(e) => tracing::warn!(
            pattern = msg.topic(),
            correlation_id,
            partition = msg.partition(),
            offset = msg.offset(),
            latency_ms,
            outcome = "error",
            error = %e,
            "handled"
        ),
    }
}

/// The count of replies, or the error the stream ended with.
fn summarize(all: &StoredReplies) -> Result<usize, RpcError> {
    match all.last() {
        Some(Err(e)) => Err(e.clone()),
        _ => Ok(all.len().max(1)),
    }
}

/// Sends replies as the handler yields them, holding one back so the last one carries the
/// disposed marker. Returns the outcome and whether every reply was delivered.
async fn stream_replies(
    shared: &Shared,
    to: &ReplyTo,
    mut replies: crate::transport::RawReplies,
) -> (Result<usize, RpcError>, Result<(), String>) {
    let mut sent = 0usize;
    let mut held: Option<Result<Vec<u8>, RpcError>> = None;
    let mut delivered = Ok(());
    while let Some(item) = replies.next().await {
        let is_err = item.is_err();
        if let Some(prev) = held.replace(item) {
            delivered = delivered.and(send_reply(shared, to, Some(prev), false).await);
            sent += 1;
        }
        if is_err {
            break;
        }
    }
    let failed = match &held {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    delivered = delivered.and(send_reply(shared, to, held, true).await);
    (failed.map_or(Ok(sent + 1), Err), delivered)
}

/// Sends stored replies (the last one disposed).
async fn send_all(shared: &Shared, to: &ReplyTo, all: StoredReplies) -> Result<(), String> {
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

async fn send_reply(
    shared: &Shared,
    to: &ReplyTo,
    item: Option<Result<Vec<u8>, RpcError>>,
    disposed: bool,
) -> Result<(), String> {
    let mut hdrs = headers::with(
        OwnedHeaders::new(),
        headers::CORRELATION_ID,
        to.correlation_id.as_bytes(),
    );
    let payload = match &item {
        Some(Ok(bytes)) => Some(bytes.as_slice()),
        Some(Err(e)) => {
            hdrs = headers::with(hdrs, headers::NEST_ERR, &headers::error_value(e));
            None
        }
        None => None,
    };
    if disposed || matches!(item, Some(Err(_))) {
        hdrs = headers::with(hdrs, headers::NEST_IS_DISPOSED, &[0u8]);
    }
    let mut record = FutureRecord::<(), [u8]>::to(&to.topic).headers(hdrs);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    if let Some(p) = to.partition {
        record = record.partition(p);
    }
    shared
        .producer
        .send(record)
        .await
        .map_err(|e| format!("reply to {} not delivered: {e}", to.topic))
}

/// Copies a poison message to `<pattern>.dlq` (payload and headers kept, reason added) and
/// logs it once. The offset moves on either way: a message that cannot be handled must not
/// block its partition.
async fn dead_letter(shared: &Shared, msg: &OwnedMessage, (reason, error): Poison) {
    let topic = dlq::dlq_topic(msg.topic());
    let hdrs = dlq::dead_letter_headers(msg, reason, &error);
    let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(hdrs);
    if let Some(key) = msg.key() {
        record = record.key(key);
    }
    if let Some(payload) = msg.payload() {
        record = record.payload(payload);
    }
    let parked = shared.producer.send(record).await;
    let dlq_error = parked.as_ref().err().map(ToString::to_string);
    tracing::warn!(
        pattern = msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        reason = reason.as_str(),
        error = %error,
        dlq = %topic,
        dlq_error = dlq_error.as_deref().unwrap_or("-"),
        "poison message dead-lettered"
    );
}
