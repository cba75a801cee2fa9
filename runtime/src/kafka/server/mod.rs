//! The serving side: a consumer group per service, replies NestJS understands, at-least-once.
//!
//! **Delivery.** A message's offset is committed only after its outcome is final — its replies,
//! or its dead-letter copy, acknowledged by the broker — and never past an unfinished message of
//! the same partition; a position counts as committed only once the broker confirmed it. A
//! crash, `kill -9` or lost membership therefore redelivers every message whose outcome was not
//! committed: handlers see each message at least once. Non-idempotent handlers opt into
//! [de-duplication by correlation id](super::dedup).
//!
//! **Failures.** A failed handler is retried in place by the [`RetryPolicy`](super::RetryPolicy)
//! (events by default, requests when asked), then an event goes to `<pattern>.dlq` and a
//! request gets its error reply. A handler that panics fails with NestJS's internal error; one
//! that runs longer than `handler_timeout` (`KAFKA_HANDLER_TIMEOUT_MS`) is cancelled and fails
//! with `DEADLINE_EXCEEDED`. Poison messages (see [`super::dlq`]) get an error reply or go to
//! `<pattern>.dlq`, and so does a request whose reply topic is not allowed.
//!
//! **Flow control.** The consumer runs on a thread of its own and never stops polling. Each
//! partition has a lane: at most `max_in_flight_per_partition` handlers of it run at once
//! (`KAFKA_MAX_IN_FLIGHT_PER_PARTITION`; 1 keeps the partition in order) and at most
//! `max_in_flight` over all (`KAFKA_MAX_IN_FLIGHT`). A lane whose queue fills (a slow, stuck or
//! retried handler) pauses its partition until it drains; the other partitions go on, commits
//! keep going out and rebalances are served. Past the byte budget (half of
//! `KAFKA_MAX_BUFFERED_BYTES`) every partition pauses until half of it is left.
//!
//! **Rebalances.** Server groups use `cooperative-sticky` assignment: a rebalance only takes
//! the partitions that move. Queued messages of a revoked partition are dropped (the next
//! owner reads them), running ones get `drain_timeout` (`KAFKA_DRAIN_TIMEOUT_MS`) to finish,
//! their offsets are committed, and what still runs is cancelled (its message is left to the
//! next owner, uncommitted). A partition with no committed offset starts at its end
//! (`KAFKA_AUTO_OFFSET_RESET`, default `latest` like NestJS), resolved and committed when it is
//! assigned: [`ServerHandle::ready`] resolves only then, so a request sent after it is never
//! skipped.
//!
//! **Stalls.** Each server also watches every partition of its topics: messages that wait while
//! the group's committed offset stays put for `stall_warning` (`KAFKA_STALL_WARNING_MS`) are
//! logged as a warning and listed by [`ServerHandle::stalled_partitions`] (see
//! `watchdog.rs`): a partition no member owns, or whose owner is stuck.
//!
//! **Broker trouble.** Consumer errors are logged and retried; afterwards a partition that
//! ends before our position is logged at ERROR and read again from where
//! `KAFKA_AUTO_OFFSET_RESET` says, and the reply producer is rebuilt when its sends time out.
//!
//! **Hostile records and bounds.** Headers are read as bytes (a record whose header key is not
//! UTF-8 is dead-lettered byte for byte); records of a request pattern without a reply address
//! are dead-lettered, never run as events; the records held are bounded in bytes
//! (`KAFKA_MAX_BUFFERED_BYTES`); a dead-letter copy the bus refuses is reduced, or its record
//! parked (see `reply.rs`); the consumer thread is supervised ([`ServerHandle::failure`]); a
//! stop fits in `KAFKA_DRAIN_TIMEOUT_MS` ([`ServerHandle::shutdown`]).

mod blocking;
mod claim;
mod consumer;
mod exactly_once;
mod lanes;
mod offsets;
mod process;
mod record;
mod reply;
mod watchdog;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tokio::sync::{oneshot, watch};

use super::dedup::DedupStore;
use super::producer::Renewable;
use super::retry::RetryPolicy;
use super::supervise::Supervision;
use super::{unavailable, KafkaConfig};
use crate::transport::Handler;
use crate::RpcError;
use lanes::{Lanes, Limits, Tp};
use record::Record;

/// Longest a server's start waits for a first broker answer (a refused login fails the
/// start; silence does not).
const START_CONTACT: Duration = Duration::from_secs(10);

/// Serves a [`Handler`] (a generated `*Server`) on Kafka.
#[derive(Debug)]
pub struct KafkaServer;

impl KafkaServer {
    /// Joins the service's consumer group (`<service>-server`, or `<configured>-server`),
    /// subscribes to its patterns and serves them until the handle is shut down.
    pub async fn start(
        config: &KafkaConfig,
        handler: impl Handler,
    ) -> Result<ServerHandle, RpcError> {
        Self::builder(config, handler).start().await
    }

    /// Like [`KafkaServer::start`], with de-duplication by correlation id: a redelivered
    /// request whose replies are in `store` gets them re-sent without calling the handler
    /// (see [`super::dedup`]; across a crash only a durable store helps).
    pub async fn start_with_dedup(
        config: &KafkaConfig,
        handler: impl Handler,
        store: Arc<dyn DedupStore>,
    ) -> Result<ServerHandle, RpcError> {
        Self::builder(config, handler).dedup(store).start().await
    }

    /// A server of `handler` with settings of its own on top of `config` (retry policy,
    /// handler timeout, extra reply topics, de-duplication).
    pub fn builder(config: &KafkaConfig, handler: impl Handler) -> ServerBuilder {
        ServerBuilder {
            config: config.clone(),
            handler: Box::new(handler),
            dedup: None,
        }
    }
}

/// Settings of one server; see [`KafkaServer::builder`].
pub struct ServerBuilder {
    config: KafkaConfig,
    handler: Box<dyn Handler>,
    dedup: Option<Arc<dyn DedupStore>>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("service", &self.handler.contract().name)
            .field("retry", &self.config.retry)
            .field("handler_timeout", &self.config.handler_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The retry policy of this service (instead of `KAFKA_RETRY_*`).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// The handler timeout of this service (instead of `KAFKA_HANDLER_TIMEOUT_MS`).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = timeout;
        self
    }

    /// Another topic this service may reply to (besides `<pattern>.reply`).
    pub fn allow_reply_topic(mut self, topic: impl Into<String>) -> Self {
        self.config.allowed_reply_topics.push(topic.into());
        self
    }

    /// De-duplication by correlation id (see [`super::dedup`]).
    pub fn dedup(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.dedup = Some(store);
        self
    }

    /// Joins the group and serves until the handle is shut down.
    pub async fn start(self) -> Result<ServerHandle, RpcError> {
        let config = self.config;
        // The builder's overrides bypass KafkaConfigBuilder's checks.
        if let Err(e) = config.retry.validate("retry") {
            return Err(RpcError::invalid_argument(e.to_string()));
        }
        if config.handler_timeout.is_zero() {
            return Err(RpcError::invalid_argument(
                "handler_timeout must be greater than zero",
            ));
        }
        if let Some(t) = config
            .allowed_reply_topics
            .iter()
            .find(|t| !super::dlq::is_topic_name(t))
        {
            return Err(RpcError::invalid_argument(format!(
                "allowed reply topic {t:?} is not a topic name"
            )));
        }
        // A refused login or TLS handshake fails the start; brokers that are down (or still
        // starting) do not: the consumer keeps trying, as it does when they go away later.
        let within = config.request_timeout.min(START_CONTACT);
        let contact = super::probe::contact(&config, within).await?;
        if let super::probe::Contact::Silent = contact {
            tracing::warn!(
                brokers = %config.brokers.join(","),
                waited_ms = within.as_millis() as u64,
                "no broker answered; serving starts anyway and joins the group once one does"
            );
        }
        let contract = self.handler.contract();
        let group = match &config.server_group {
            Some(g) => format!("{g}-server"),
            None => contract.server_group.to_owned(),
        };
        let topics: Vec<String> = contract.request_topics().map(str::to_owned).collect();
        // Event patterns too: a NestJS caller that `send`s to one listens on `<pattern>.reply`,
        // and gets its refusal there (`server::event`).
        let mut replies: HashMap<String, Vec<String>> = contract
            .methods
            .iter()
            .map(|m| {
                let reply = m
                    .reply_topic
                    .map_or_else(|| format!("{}.reply", m.pattern), str::to_owned);
                (m.pattern.to_owned(), vec![reply])
            })
            .collect();

        for list in replies.values_mut() {
            list.extend(config.allowed_reply_topics.iter().cloned());
        }
        let producer = Arc::new(
            Renewable::new(producer_config(&config, &group))
                .map_err(|e| unavailable("cannot create a Kafka producer", e))?,
        );
        let exactly_once = config.transactional_id.is_some();
        if exactly_once {
            let p = producer.get();
            let timeout = config.request_timeout;
            // Fences a predecessor with this id and aborts its unfinished transaction.
            tokio::task::spawn_blocking(move || {
                rdkafka::producer::Producer::init_transactions(&p, timeout)
            })
            .await
            .map_err(|e| RpcError::internal(format!("init_transactions task failed: {e}")))?
            .map_err(|e| unavailable("cannot initialise transactions", e))?;
        }
        // One message at a time when each is a transaction.
        let (max_in_flight, per_partition) = if exactly_once {
            (1, 1)
        } else {
            (config.max_in_flight, config.max_in_flight_per_partition)
        };
        let (ready, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            handler: self.handler,
            producer,
            topic_index: topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect(),
            patterns: topics.iter().map(|t| Arc::from(t.as_str())).collect(),
            topics,
            replies,
            lanes: Mutex::new(Lanes::new(
                Limits::new(max_in_flight, per_partition)
                    .with_buffered_bytes(config.max_buffered_bytes / 2),
            )),
            exactly_once,
            group_metadata: exactly_once::GroupMetadata::default(),
            finished: Condvar::new(),
            runtime: tokio::runtime::Handle::current(),
            settings: Settings {
                reply_timeout: config.request_timeout,
                handler_timeout: config.handler_timeout,
                drain_timeout: config.drain_timeout,
                retry: config.retry.clone(),
                max_message_bytes: config.max_message_bytes,
                reset: config.auto_offset_reset,
                dedup: self.dedup,
            },
            stop_by: Mutex::new(None),
            server_id: blocking::server_id(),
            stats: Stats {
                ready,
                assigned: AtomicUsize::new(0),
                assignments: AtomicU64::new(0),
                revocations: AtomicU64::new(0),
                stalled: Arc::default(),
                supervision: Supervision::new("the consumer thread"),
                parked: Mutex::default(),
                vanished: Mutex::default(),
            },
        });
        let consumer: BaseConsumer<consumer::ServerContext> = consumer_config(&config, &group)
            .create_with_context(consumer::ServerContext::new(shared.clone()))
            .map_err(|e| unavailable("cannot create a Kafka consumer", e))?;
        let topic_refs: Vec<&str> = shared.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(|e| unavailable("cannot subscribe", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        consumer::spawn(consumer, shared.clone(), stop.clone(), done_tx, &group)
            .map_err(|e| unavailable("cannot start the consumer thread", e))?;
        watchdog::spawn(
            &config,
            &group,
            shared.topics.clone(),
            shared.stats.stalled.clone(),
            stop.clone(),
        )
        .map_err(|e| unavailable("cannot start the watchdog thread", e))?;
        tracing::info!(group = %group, patterns = ?shared.topics, "serving");
        Ok(ServerHandle {
            stop,
            done: Some(done),
            shared,
            group,
        })
    }
}

/// Bytes a fetched record may take besides its payload (key, headers, batch framing).
const RECORD_OVERHEAD: usize = 64 << 10;
/// librdkafka's `message.max.bytes` default, the floor of a consumer's `fetch.max.bytes`.
const CONSUMER_MESSAGE_MAX: usize = 1_000_000;

fn consumer_config(config: &KafkaConfig, group: &str) -> rdkafka::ClientConfig {
    let quarter = config.max_buffered_bytes / 4;
    let partition_fetch = (config.max_message_bytes + RECORD_OVERHEAD).min(1_000_000_000);
    // librdkafka refuses a fetch.max.bytes below the consumer's message.max.bytes (1,000,000).
    let fetch = quarter.clamp(partition_fetch.max(CONSUMER_MESSAGE_MAX), 2_147_483_135);
    let queued_kib = (quarter / 1024).clamp(partition_fetch.div_ceil(1024), 2_097_151);
    let mut c = config.common();
    c.set("group.id", group)
        .set("client.id", group)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            config.auto_offset_reset.librdkafka_name(),
        )
        .set("partition.assignment.strategy", &config.assignment_strategy)
        .set("enable.partition.eof", "false")
        .set(
            "fetch.wait.max.ms",
            config.fetch_wait.as_millis().to_string(),
        )
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        )
        // The memory bound (`max_buffered_bytes`): a quarter for librdkafka's prefetch queue,
        // a quarter per fetch; a partition's fetch holds at least one record at the limit.
        .set("max.partition.fetch.bytes", partition_fetch.to_string())
        .set("fetch.max.bytes", fetch.to_string())
        .set("queued.max.messages.kbytes", queued_kib.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout.as_millis() / 3)
                .max(100)
                .to_string(),
        );
    config.librdkafka.apply(&mut c);
    c
}

fn producer_config(config: &KafkaConfig, group: &str) -> rdkafka::ClientConfig {
    let mut c = config.reliable_producer(group);
    if let Some(id) = &config.transactional_id {
        c.set("transactional.id", id);
    }
    // Room for a dead-letter copy of an oversized message.
    c.set(
        "message.max.bytes",
        (config.max_message_bytes.saturating_mul(2) + 65_536)
            .clamp(1_000_000, 1_000_000_000)
            .to_string(),
    );
    config.librdkafka.apply(&mut c);
    c
}

/// What the consumer thread, its rebalance callbacks and the handler tasks share.
pub(super) struct Shared {
    handler: Box<dyn Handler>,
    producer: Arc<Renewable>,
    /// Request topics; a [`Tp`] names one by its index here.
    topics: Vec<String>,
    /// The same names, shared with every [`Record`] read from them.
    patterns: Vec<Arc<str>>,
    topic_index: HashMap<String, usize>,
    /// Reply topics each pattern may answer to.
    replies: HashMap<String, Vec<String>>,
    lanes: Mutex<Lanes<Record>>,
    /// Each message in a transaction with its offset (no commits of our own).
    exactly_once: bool,
    /// The consumer's group metadata, for offsets committed in transactions.
    group_metadata: exactly_once::GroupMetadata,
    /// Signalled whenever a handler finishes (revocation and shutdown wait on it).
    finished: Condvar,
    runtime: tokio::runtime::Handle,
    settings: Settings,
    stats: Stats,
    /// Set when a stop is asked for: by then the server must be gone (`drain_timeout` later).
    stop_by: Mutex<Option<std::time::Instant>>,
    /// Tells this server's handler polls apart from other servers' (see `blocking.rs`).
    server_id: u64,
}

pub(super) struct Settings {
    reply_timeout: Duration,
    handler_timeout: Duration,
    drain_timeout: Duration,
    retry: RetryPolicy,
    max_message_bytes: usize,
    reset: super::OffsetReset,
    dedup: Option<Arc<dyn DedupStore>>,
}

/// Membership of a server, for its handle and `/health`.
struct Stats {
    /// Every assigned partition has a resolved position.
    ready: watch::Sender<bool>,
    assigned: AtomicUsize,
    assignments: AtomicU64,
    revocations: AtomicU64,
    /// Partitions of our topics that nobody consumes (the watchdog's last check).
    stalled: Arc<Mutex<Vec<watchdog::Partition>>>,
    /// The consumer thread's fate.
    supervision: Supervision,
    /// Partitions paused on a record whose dead-letter copy was refused: topic, partition,
    /// offset of the record.
    parked: Mutex<Vec<(String, i32, i64)>>,
    /// Records whose handler task ended without an outcome (a panic in this crate): their
    /// offsets are held, so only a new owner of the partition redelivers them.
    vanished: Mutex<Vec<String>>,
}

impl Shared {
    /// The lanes; a handler task that panicked while holding them cannot make them unusable.
    fn lanes(&self) -> MutexGuard<'_, Lanes<Record>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn group_metadata(&self) -> Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>> {
        self.group_metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When a requested stop must be over, once one was requested.
    fn stop_deadline(&self) -> Option<std::time::Instant> {
        *self.stop_by.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tp(&self, topic: &str, partition: i32) -> Option<Tp> {
        self.topic_index.get(topic).map(|&i| (i, partition))
    }

    /// Whether `pattern` is a request (its callers wait for replies), not an event.
    fn expects_reply(&self, pattern: &str) -> bool {
        self.handler
            .contract()
            .method(pattern)
            .is_some_and(|m| m.kind.expects_reply())
    }

    fn may_reply_to(&self, pattern: &str, reply_topic: &str) -> bool {
        self.replies
            .get(pattern)
            .is_some_and(|allowed| allowed.iter().any(|t| t == reply_topic))
    }
}

/// A running server. [`ServerHandle::shutdown`] stops it gracefully; dropping it starts the
/// same graceful stop without waiting for it.
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    done: Option<oneshot::Receiver<()>>,
    shared: Arc<Shared>,
    group: String,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("group", &self.group)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Whether the consumer currently holds partitions.
    pub fn is_assigned(&self) -> bool {
        self.shared.stats.assigned.load(Ordering::SeqCst) > 0
    }

    /// Whether the server holds partitions and knows where it reads each of them from: a
    /// request produced from now on is handled (`/health` reports this).
    pub fn is_ready(&self) -> bool {
        *self.shared.stats.ready.borrow()
    }

    /// Resolves once the server [is ready](ServerHandle::is_ready).
    pub async fn ready(&self) {
        let mut rx = self.shared.stats.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Waits until the server [is ready](ServerHandle::is_ready), up to `timeout`. Returns
    /// whether it is.
    pub async fn wait_assigned(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.ready()).await.is_ok()
    }

    /// How many times partitions were assigned to this server (1 after a quiet start; each
    /// rebalance that gives it partitions adds one).
    pub fn assignments(&self) -> u64 {
        self.shared.stats.assignments.load(Ordering::SeqCst)
    }

    /// How many times partitions were taken from this server (rebalances, lost membership).
    pub fn revocations(&self) -> u64 {
        self.shared.stats.revocations.load(Ordering::SeqCst)
    }

    /// Partitions of this server's topics where messages wait while the group's committed
    /// offset has not moved for `stall_warning`: no member owns them, or their owner is stuck
    /// or does not commit. Each new stall is also logged as a warning.
    pub fn stalled_partitions(&self) -> Vec<(String, i32)> {
        let stalled = self.shared.stats.stalled.lock();
        stalled.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the server stopped serving on its own (its consumer thread panicked or ended
    /// unasked), if it did: it then holds no partitions and `/health` reports it. `None`
    /// while it serves, and after a requested shutdown.
    pub fn failure(&self) -> Option<RpcError> {
        self.shared.stats.supervision.failure()
    }

    /// Resolves (with `UNAVAILABLE`) once the server stopped serving on its own; never while
    /// it serves. A service's `main` can `select!` on it next to its shutdown signal and exit
    /// non-zero, so that its orchestrator replaces it.
    pub async fn failed(&self) -> RpcError {
        self.shared.stats.supervision.failed().await
    }

    /// Partitions paused on a record whose dead-letter copy the bus refused, even reduced
    /// (topic, partition, offset of the record): each is retried every 30 s and listed by
    /// `/health` as degraded until its copy is written.
    pub fn parked_partitions(&self) -> Vec<(String, i32, i64)> {
        let parked = self.shared.stats.parked.lock();
        parked.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What is wrong with this server, if anything: it stopped serving, a partition is
    /// parked, or a handler task vanished without an outcome (`/health` reports this).
    pub fn problem(&self) -> Option<String> {
        if let Some(e) = self.failure() {
            return Some(e.message);
        }
        let parked = self.parked_partitions();
        if let Some((topic, partition, offset)) = parked.first() {
            return Some(format!(
                "degraded: {} partition(s) paused because a dead-letter copy is refused, first {topic}[{partition}]@{offset}",
                parked.len()
            ));
        }
        let vanished = self.shared.stats.vanished.lock();
        let vanished = vanished.unwrap_or_else(|e| e.into_inner());
        vanished.first().map(|first| {
            format!(
                "{} handler task(s) ended without an outcome, first {first}: their offsets are held until another member owns the partition; replace this process",
                vanished.len()
            )
        })
    }

    /// Bytes of consumed records this server holds now (queued, running, parked): at most
    /// half of `KAFKA_MAX_BUFFERED_BYTES` plus one record before fetching pauses.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lanes().buffered()
    }

    /// Handlers running right now.
    pub fn in_flight(&self) -> usize {
        self.shared.lanes().running()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Stops fetching, lets running handlers finish, commits, flushes the producer and leaves
    /// the group — all within the drain timeout (`KAFKA_DRAIN_TIMEOUT_MS`), the whole budget
    /// from this call to its return. Handlers still running near its end are abandoned (their
    /// records are not committed: the next owner handles them); if the broker does not answer
    /// the commit, the flush or the leave in time, this returns anyway at the budget's end,
    /// with a warning, leaving the consumer to close in the background (what was not committed
    /// is redelivered).
    pub async fn shutdown(mut self) {
        let deadline = self.begin_stop();
        let Some(done) = self.done.take() else {
            return;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if tokio::time::timeout(left, done).await.is_err() {
            tracing::warn!(
                budget_ms = self.shared.settings.drain_timeout.as_millis() as u64,
                "the stop's budget (KAFKA_DRAIN_TIMEOUT_MS) ran out before the consumer closed (a broker that does not answer?); returning without it: what it did not commit is redelivered"
            );
        }
    }

    /// Asks the consumer thread to stop; returns by when it must be gone.
    fn begin_stop(&self) -> std::time::Instant {
        let deadline = *self
            .shared
            .stop_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| std::time::Instant::now() + self.shared.settings.drain_timeout);
        self.stop.store(true, Ordering::SeqCst);
        deadline
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.begin_stop();
    }
}
