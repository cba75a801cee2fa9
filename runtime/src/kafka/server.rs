//! The serving side: a consumer group per service, replies NestJS understands, at-least-once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{watch, Semaphore};

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
    assigned: Arc<AtomicBool>,
    group: String,
}

impl ServerHandle {
    /// Whether the consumer currently holds partitions (the service is ready).
    pub fn is_assigned(&self) -> bool {
        self.assigned.load(Ordering::SeqCst)
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
    assigned: Arc<AtomicBool>,
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
            self.assigned.store(false, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                self.assigned.store(tpl.count() > 0, Ordering::SeqCst);
            }
            Rebalance::Revoke(_) => {
                let still = consumer
                    .assignment()
                    .map(|a| a.count() > 0)
                    .unwrap_or(false);
                self.assigned.store(still, Ordering::SeqCst);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

struct Shared {
    handler: Box<dyn Handler>,
    producer: FutureProducer,
    tracker: Arc<Tracker>,
    reply_timeout: Duration,
}

impl KafkaServer {
    /// Joins the service's consumer group (`<service>-server`, or `<configured>-server`),
    /// subscribes to its patterns and serves them until the handle is shut down.
    pub async fn start(
        config: &KafkaConfig,
        handler: impl Handler,
    ) -> Result<ServerHandle, RpcError> {
        let contract = handler.contract();
        let group = match &config.server_group {
            Some(g) => format!("{g}-server"),
            None => contract.server_group.to_owned(),
        };
        let tracker = Arc::new(Tracker::default());
        let assigned = Arc::new(AtomicBool::new(false));
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
                assigned: assigned.clone(),
            })
            .map_err(|e| unavailable("cannot create a Kafka consumer", e))?;
        let topics: Vec<&str> = contract.request_topics().collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| unavailable("cannot subscribe", e))?;
        let producer: FutureProducer = config
            .common()
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
            .create()
            .map_err(|e| unavailable("cannot create a Kafka producer", e))?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            producer,
            tracker,
            reply_timeout: config.request_timeout,
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
            assigned,
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
    let mut commit_tick = tokio::time::interval(Duration::from_millis(100));
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                continue;
            }
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared
            .tracker
            .begin(msg.topic(), msg.partition(), msg.offset());
        let shared = shared.clone();
        tokio::spawn(async move {
            handle(&shared, &msg).await;
            shared
                .tracker
                .finish(msg.topic(), msg.partition(), msg.offset());
            drop(permit);
        });
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
    commit(&consumer, &shared.tracker, CommitMode::Sync);
    let _ = shared.producer.flush(shared.reply_timeout);
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
    let correlation_id = headers::text(hdrs, headers::CORRELATION_ID);
    let reply_topic = headers::text(hdrs, headers::REPLY_TOPIC).filter(|t| !t.is_empty());
    let reply_partition = headers::text(hdrs, headers::REPLY_PARTITION)
        .and_then(|p| p.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p >= 0.0)
        .map(|p| p as i32);
    // NestJS treats a message without correlation id or reply topic as an event.
    let request = match (&correlation_id, &reply_topic) {
        (Some(id), Some(topic)) => Some((id.clone(), topic.clone())),
        _ => None,
    };
    let incoming = Incoming {
        pattern: msg.topic().to_owned(),
        payload: msg.payload().unwrap_or_default().to_vec(),
        correlation_id: request.as_ref().map(|(id, _)| id.clone()),
    };
    let mut replies = shared.handler.handle(incoming);
    let outcome: Result<usize, RpcError> = match &request {
        None => {
            let mut failure = None;
            while let Some(item) = replies.next().await {
                if let Err(e) = item {
                    failure = Some(e);
                }
            }
            failure.map_or(Ok(0), Err)
        }
        Some((id, topic)) => {
            // Hold one reply back so the last one carries the disposed marker.
            let mut sent = 0usize;
            let mut held: Option<Result<Vec<u8>, RpcError>> = None;
            let mut failed = None;
            while let Some(item) = replies.next().await {
                let is_err = item.is_err();
                if let Some(prev) = held.replace(item) {
                    send_reply(shared, topic, reply_partition, id, Some(prev), false).await;
                    sent += 1;
                }
                if is_err {
                    break;
                }
            }
            if let Some(Err(e)) = &held {
                failed = Some(e.clone());
            }
            send_reply(shared, topic, reply_partition, id, held, true).await;
            failed.map_or(Ok(sent + 1), Err)
        }
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(replies) => tracing::info!(
            pattern = msg.topic(),
            correlation_id = correlation_id.as_deref().unwrap_or("-"),
            partition = msg.partition(),
            offset = msg.offset(),
            latency_ms,
            replies,
            outcome = "ok",
            "handled"
        ),
        Err(e) => tracing::warn!(
            pattern = msg.topic(),
            correlation_id = correlation_id.as_deref().unwrap_or("-"),
            partition = msg.partition(),
            offset = msg.offset(),
            latency_ms,
            outcome = "error",
            error = %e,
            "handled"
        ),
    }
}

async fn send_reply(
    shared: &Shared,
    topic: &str,
    partition: Option<i32>,
    correlation_id: &str,
    item: Option<Result<Vec<u8>, RpcError>>,
    disposed: bool,
) {
    let mut hdrs = headers::with(
        OwnedHeaders::new(),
        headers::CORRELATION_ID,
        correlation_id.as_bytes(),
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
    let mut record = FutureRecord::<(), [u8]>::to(topic).headers(hdrs);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Err((e, _)) = shared.producer.send(record, shared.reply_timeout).await {
        tracing::error!(topic, correlation_id, error = %e, "reply not delivered");
    }
}
