//! The consumer thread: polls without ever blocking on handlers, hands messages to their lanes,
//! applies pauses and resumes, commits, and serves rebalances.
//!
//! It is an OS thread of its own, as Spring Kafka's listener containers are, so that the
//! blocking parts of a consumer — the bounded wait for running handlers when partitions are
//! revoked, synchronous commits, the final flush — never block an async worker, and the
//! handlers (tokio tasks) keep running while it waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::super::recovery;
use super::lanes::{Job, Refused, Tp};
use super::process::process;
use super::record::Record;
use super::Shared;
use crate::kafka::OffsetReset;

/// Longest a poll waits for a message: bounds how late a resume or a commit tick can be.
const POLL: Duration = Duration::from_millis(5);
/// How often finished offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(100);
/// Bound of each broker round trip made while a rebalance waits.
const CALL: Duration = Duration::from_secs(5);

pub(super) struct ServerContext {
    shared: Arc<Shared>,
}

impl ServerContext {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        ServerContext { shared }
    }
}

impl ClientContext for ServerContext {}

impl ConsumerContext for ServerContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                on_assign(&self.shared, consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                on_revoke(&self.shared, consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error: giving up every partition");
                on_revoke(&self.shared, consumer, tpl);
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot apply the new assignment");
        }
        let assigned = self.shared.lanes().assigned().count();
        self.shared.stats.assigned.store(assigned, Ordering::SeqCst);
        update_ready(&self.shared);
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => acked(&self.shared, offsets),
            Err(e) => tracing::warn!(error = %e, "offset commit failed; it is sent again"),
        }
    }
}

/// New partitions: resolve where each starts — its committed offset, else its end (or start,
/// with `earliest`) — and commit that start at once, so neither a request produced while
/// librdkafka would still be resolving `latest`, nor one produced before this member crashes,
/// is skipped.
fn on_assign(
    shared: &Shared,
    consumer: &BaseConsumer<ServerContext>,
    tpl: &mut TopicPartitionList,
) {
    // Without an answer we cannot tell "no committed offset" from "unknown": then librdkafka
    // resolves the position itself, and the lane waits for its first message to be ready.
    let committed = match consumer.committed_offsets(tpl.clone(), CALL) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read committed offsets; librdkafka resolves the positions");
            None
        }
    };
    let mut starts: Vec<(Tp, Option<i64>, bool)> = Vec::new();
    let mut to_commit = TopicPartitionList::new();
    for e in tpl.elements() {
        let (topic, partition) = (e.topic().to_owned(), e.partition());
        let Some(tp) = shared.tp(&topic, partition) else {
            continue;
        };
        let known = committed
            .as_ref()
            .and_then(|c| c.find_partition(&topic, partition))
            .filter(|c| c.error().is_ok())
            .map(|c| c.offset());
        let start =
            match known {
                // Unknown: leave it to librdkafka (committed offset, else auto.offset.reset).
                None => None,
                Some(Offset::Offset(o)) if o >= 0 => Some((o, true)),
                Some(Offset::Invalid) => consumer
                    .fetch_watermarks(&topic, partition, CALL)
                    .ok()
                    .map(|(low, high)| {
                        let o = match shared.settings.reset {
                            OffsetReset::Latest => high,
                            OffsetReset::Earliest => low,
                        };
                        (o, false)
                    }),
                Some(_) => None,
            };
        if let Some((o, false)) = start {
            let _ = to_commit.add_partition_offset(&topic, partition, Offset::Offset(o));
        }
        starts.push((tp, start.map(|s| s.0), start.is_some_and(|s| s.1)));
    }
    let start_committed = to_commit.count() == 0
        || match consumer.commit(&to_commit, CommitMode::Sync) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot commit the start positions; committed on the next tick");
                false
            }
        };
    // Where each partition starts (`None`: librdkafka resolves it): what a lost or repeated
    // record after a handover is traced back to.
    let positions: Vec<String> = starts
        .iter()
        .map(|(tp, start, committed)| {
            let from = if *committed { "committed" } else { "reset" };
            match start {
                Some(o) => format!("{}[{}]@{o} ({from})", shared.topics[tp.0], tp.1),
                None => format!("{}[{}]@unresolved", shared.topics[tp.0], tp.1),
            }
        })
        .collect();
    let mut lanes = shared.lanes();
    for (tp, start, was_committed) in starts {
        if let Some(o) = start {
            let _ = tpl.set_partition_offset(&shared.topics[tp.0], tp.1, Offset::Offset(o));
        }
        lanes.assign(
            tp,
            start,
            was_committed || (start.is_some() && start_committed),
        );
    }
    drop(lanes);
    if shared.exactly_once {
        *shared
            .group_metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = consumer.group_metadata().map(Arc::new);
    }
    shared.stats.assignments.fetch_add(1, Ordering::SeqCst);
    tracing::info!(partitions = tpl.count(), starts = ?positions, "partitions assigned");
}

/// Partitions taken away: drop their queued messages, give running handlers the drain timeout,
/// commit what finished, cancel the rest (their messages go to the next owner uncommitted).
fn on_revoke(shared: &Shared, consumer: &BaseConsumer<ServerContext>, tpl: &TopicPartitionList) {
    let tps: Vec<Tp> = tpl
        .elements()
        .iter()
        .filter_map(|e| shared.tp(e.topic(), e.partition()))
        .collect();
    let lost = consumer.assignment_lost();
    let dropped = shared.lanes().revoke(&tps);
    // A lost assignment may already be someone else's: cancel at once. A stopping server
    // drained and committed already (within its budget): nothing to wait for again.
    let stopping = shared.stop_deadline().is_some();
    let grace = if lost || stopping {
        Duration::ZERO
    } else {
        shared.settings.drain_timeout
    };
    let still_running =
        wait_until(shared, grace, |lanes| lanes.running_in(&tps) == 0).running_in(&tps);
    let committed = if lost || stopping {
        Vec::new()
    } else {
        commit(shared, consumer, Some(&tps), CommitMode::Sync)
    };
    shared.lanes().remove(&tps);
    shared.stats.revocations.fetch_add(1, Ordering::SeqCst);
    tracing::info!(
        partitions = tps.len(),
        dropped_queued = dropped,
        cancelled = still_running,
        lost,
        committed = ?committed,
        "partitions revoked"
    );
}

/// Waits (bounded) until `done` holds for the lanes; returns them locked.
fn wait_until<'a>(
    shared: &'a Shared,
    within: Duration,
    done: impl Fn(&super::Lanes<Record>) -> bool,
) -> std::sync::MutexGuard<'a, super::Lanes<Record>> {
    let deadline = Instant::now() + within;
    let mut lanes = shared.lanes();
    while !done(&lanes) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        lanes = shared
            .finished
            .wait_timeout(lanes, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    lanes
}

fn acked(shared: &Shared, offsets: &TopicPartitionList) {
    let mut lanes = shared.lanes();
    for e in offsets.elements() {
        if let (Some(tp), Offset::Offset(o), Ok(())) =
            (shared.tp(e.topic(), e.partition()), e.offset(), e.error())
        {
            lanes.acked(tp, o);
        }
    }
}

/// Commits finished offsets (of `only`, or all). Async commits are confirmed by the commit
/// callback; a sync one here. Returns the positions sent (a failed commit is logged and sent
/// again on the next tick).
fn commit(
    shared: &Shared,
    consumer: &BaseConsumer<ServerContext>,
    only: Option<&[Tp]>,
    mode: CommitMode,
) -> Vec<(Tp, i64)> {
    // Exactly-once: every offset is committed by its message's transaction.
    if shared.exactly_once {
        return Vec::new();
    }
    let offsets = shared.lanes().committable(only);
    if offsets.is_empty() {
        return offsets;
    }
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for &((topic, partition), o) in &offsets {
        let _ = tpl.add_partition_offset(&shared.topics[topic], partition, Offset::Offset(o));
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) if matches!(mode, CommitMode::Sync) => acked(shared, &tpl),
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "offset commit failed; it is sent again"),
    }
    offsets
}

fn update_ready(shared: &Shared) {
    let ready = shared.lanes().is_ready();
    shared.stats.ready.send_if_modified(|r| {
        let changed = *r != ready;
        *r = ready;
        changed
    });
}

/// Starts the consumer thread, supervised: if its loop panics or ends unasked, the server
/// reports the failure (`/health`, [`super::ServerHandle::failure`]) and gives up its
/// partitions so that other members take them.
pub(super) fn spawn(
    consumer: BaseConsumer<ServerContext>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    done: oneshot::Sender<()>,
    group: &str,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("axion-consumer {group}"))
        .spawn(move || {
            let supervision = &shared.stats.supervision;
            supervision.run(
                || stop.load(Ordering::SeqCst),
                || run(&consumer, &shared, &stop),
            );
            if supervision.failure().is_some() {
                stop.store(true, Ordering::SeqCst); // the watchdog too
                shared.stats.ready.send_replace(false);
            }
            let drained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drain(&consumer, &shared)
            }));
            if let Err(panic) = drained {
                tracing::error!(
                    error = %super::super::supervise::panic_message(panic),
                    "the drain panicked; what it did not commit is redelivered"
                );
            }
            drop(consumer); // leaves the group
            tracing::info!("server stopped");
            let _ = done.send(());
        })
        .map(drop)
}

fn run(consumer: &BaseConsumer<ServerContext>, shared: &Arc<Shared>, stop: &AtomicBool) {
    let mut last_commit = Instant::now();
    let mut jobs = Vec::new();
    // After consumer errors: check now and then that no partition ends before our position.
    let mut troubled_until: Option<Instant> = None;
    let mut last_check = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(POLL) {
            Some(Ok(m)) => dispatch(shared, &m, &mut jobs),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer error");
                troubled_until = Some(Instant::now() + recovery::WINDOW);
            }
            None => {}
        }
        apply_flow(consumer, shared);
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = Instant::now();
            unpark(shared);
            report_blocking(shared);
            let _ = commit(shared, consumer, None, CommitMode::Async);
            update_ready(shared);
            if troubled_until.is_some_and(|t| Instant::now() < t)
                && last_check.elapsed() >= Duration::from_secs(1)
            {
                last_check = Instant::now();
                let rewound = recovery::rewind_past_end(consumer, true, shared.settings.reset);
                // Offsets of the old partition mean nothing in the new one.
                let mut lanes = shared.lanes();
                for e in rewound.elements() {
                    if let Some(tp) = shared.tp(e.topic(), e.partition()) {
                        lanes.restart(tp);
                    }
                }
            }
        }
    }
}

/// Warns of handlers that block their thread past the handler timeout (once each).
fn report_blocking(shared: &Shared) {
    let limit = shared.settings.handler_timeout;
    for (topic, partition, offset, running) in super::blocking::blocked(shared.server_id, limit) {
        let pattern = &shared.topics[topic];
        crate::metrics::global().blocked(pattern);
        tracing::warn!(
            pattern = %pattern,
            partition,
            offset,
            running_ms = running.as_millis() as u64,
            "a handler has not yielded for longer than the handler timeout: it blocks its thread (std::thread::sleep, a synchronous client?), which the timeout cannot stop; run blocking work with tokio::task::spawn_blocking"
        );
    }
}

/// Runs parked records whose wait is over, and publishes which partitions are parked.
fn unpark(shared: &Arc<Shared>) {
    let (jobs, parked) = {
        let mut lanes = shared.lanes();
        (lanes.unpark_due(Instant::now()), lanes.parked())
    };
    start(shared, jobs);
    let parked: Vec<(String, i32, i64)> = parked
        .into_iter()
        .map(|((topic, partition), offset)| (shared.topics[topic].clone(), partition, offset))
        .collect();
    let mut published = shared
        .stats
        .parked
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *published != parked {
        *published = parked;
    }
}

/// Graceful stop, inside the stop's budget (`drain_timeout` from the request to stop): drop
/// what has not started, let running handlers finish until the budget's last part, commit,
/// cancel what still runs, flush the replies with what is left.
fn drain(consumer: &BaseConsumer<ServerContext>, shared: &Shared) {
    let budget = shared.settings.drain_timeout;
    let deadline = shared
        .stop_deadline()
        .unwrap_or_else(|| Instant::now() + budget);
    // The budget's last part is for the commit, the flush and leaving the group.
    let tail = (budget / 4).min(Duration::from_secs(2));
    shared.lanes().stop();
    let handlers = deadline.checked_sub(tail).map_or(Duration::ZERO, |t| {
        t.saturating_duration_since(Instant::now())
    });
    let running = wait_until(shared, handlers, |l| l.running() == 0).running();
    if running > 0 {
        tracing::warn!(
            running,
            "handlers did not finish within the drain timeout; abandoned, their records are not committed and will be redelivered"
        );
    }
    let committed = commit(shared, consumer, None, CommitMode::Sync);
    tracing::info!(committed = ?committed, "drained");
    shared.lanes().cancel_all();
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = rdkafka::producer::Producer::flush(
        &shared.producer.get(),
        left.min(shared.settings.reply_timeout),
    );
    consumer.unsubscribe();
}

/// Hands `msg` to its lane; `jobs` is the consumer thread's reused buffer of jobs to start.
fn dispatch(shared: &Arc<Shared>, msg: &BorrowedMessage<'_>, jobs: &mut Vec<Job<Record>>) {
    let Some(tp) = shared.tp(msg.topic(), msg.partition()) else {
        return;
    };
    let fingerprint = fingerprint(msg);
    let record = Record::read(
        msg,
        (tp.0, shared.patterns[tp.0].clone()),
        shared.settings.max_message_bytes,
    );
    let size = record.size();
    let pushed = shared
        .lanes()
        .push_into(tp, msg.offset(), (fingerprint, size), record, jobs);
    match pushed {
        Ok(()) => start(shared, jobs.drain(..)),
        Err(Refused::NotAssigned(msg)) => tracing::debug!(
            pattern = &*msg.pattern,
            partition = msg.partition,
            offset = msg.offset,
            "message of a partition no longer ours: left to its owner"
        ),
        Err(Refused::Duplicate(msg)) => tracing::warn!(
            pattern = &*msg.pattern,
            partition = msg.partition,
            offset = msg.offset,
            "record delivered again while it is queued or running: skipped"
        ),
    }
}

/// What tells two records at one offset apart: a hash of the timestamp, key, payload and
/// headers. The same record delivered twice has the same; a different one under the same
/// offset (a partition re-created under us, a broker that labels a record wrongly) does not,
/// and runs.
fn fingerprint(msg: &BorrowedMessage<'_>) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    msg.timestamp().to_millis().hash(&mut h);
    msg.key().hash(&mut h);
    msg.payload().hash(&mut h);
    if let Some(headers) = msg.headers() {
        for header in super::super::headers::raw(headers) {
            header.hash(&mut h);
        }
    }
    h.finish()
}

fn apply_flow(consumer: &BaseConsumer<ServerContext>, shared: &Shared) {
    let (pause, resume) = shared.lanes().take_flow_changes();
    for (tps, paused) in [(pause, true), (resume, false)] {
        if tps.is_empty() {
            continue;
        }
        let mut tpl = TopicPartitionList::with_capacity(tps.len());
        for (topic, partition) in &tps {
            tpl.add_partition(&shared.topics[*topic], *partition);
        }
        let result = if paused {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        match result {
            Ok(()) => tracing::debug!(partitions = tps.len(), paused, "flow control"),
            Err(e) => tracing::warn!(error = %e, paused, "cannot pause or resume partitions"),
        }
    }
}

/// Spawns the handler tasks of `jobs`. Each job's [`Finish`] exists before its task is
/// spawned, so that a task dropped before it first runs (a runtime shutting down) still ends
/// its job.
fn start(shared: &Arc<Shared>, jobs: impl IntoIterator<Item = Job<Record>>) {
    for job in jobs {
        let finish = Finish {
            shared: shared.clone(),
            tp: job.tp,
            epoch: job.epoch,
            offset: job.offset,
            end: End::Vanished,
        };
        shared.runtime.spawn(run_job(finish, job));
    }
}

async fn run_job(mut finish: Finish, job: Job<Record>) {
    let Job {
        mut msg, cancel, ..
    } = job;
    // Until an outcome is known, the task may vanish (the runtime shut down, a panic in this
    // crate): then its offset stays uncommitted and the record is redelivered.
    let shared = &*finish.shared;
    let handled = async {
        if shared.exactly_once {
            super::exactly_once::process_exactly_once(&finish.shared, &msg).await
        } else {
            process(shared, &msg).await
        }
    };
    let outcome = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        outcome = handled => Some(outcome),
    };
    finish.end = match outcome {
        None => End::Cancelled,
        Some(Ok(())) => End::Done,
        Some(Err(unwritable)) => {
            msg.letter = Some(unwritable);
            End::Parked(Box::new(msg))
        }
    };
}

/// How long a parked record waits before it is handled again.
const PARKED_FOR: Duration = Duration::from_secs(30);

/// How a job ended, as its lane learns it.
enum End {
    /// Final: replied or dead-lettered; the offset may be committed.
    Done,
    /// Cancelled (revoked, stopped): left to the next owner.
    Cancelled,
    /// Its dead-letter copy was refused: the record waits, its partition paused.
    Parked(Box<Record>),
    /// The task ended without an outcome.
    Vanished,
}

/// Reports a job's end to its lane, whatever way the task ends, and starts what may start.
struct Finish {
    shared: Arc<Shared>,
    tp: Tp,
    epoch: u64,
    offset: i64,
    end: End,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let (tp, epoch, offset) = (self.tp, self.epoch, self.offset);
        let end = std::mem::replace(&mut self.end, End::Cancelled);
        let next = {
            let mut lanes = self.shared.lanes();
            match end {
                End::Done => lanes.finish(tp, epoch, offset, true),
                End::Cancelled => lanes.finish(tp, epoch, offset, false),
                End::Parked(msg) => {
                    lanes.park(tp, epoch, offset, *msg, Instant::now() + PARKED_FOR)
                }
                End::Vanished => {
                    let pattern = &self.shared.topics[tp.0];
                    let held = format!("{pattern}[{}]@{offset}", tp.1);
                    if std::thread::panicking() {
                        tracing::error!(
                            record = %held,
                            "a handler task panicked without an outcome; its offset is held, so the record is redelivered to the next owner"
                        );
                        self.shared
                            .stats
                            .vanished
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(held);
                    } else {
                        tracing::warn!(
                            record = %held,
                            "a handler task was dropped without an outcome (the runtime shut down?); its offset is not committed"
                        );
                    }
                    lanes.finish(tp, epoch, offset, false)
                }
            }
        };
        self.shared.finished.notify_all();
        start(&self.shared, next);
    }
}
