//! Handling one message: checks, the handler (bounded in time, panics caught), retries by the
//! policy, replies, and the dead-letter topic. Returns only once the message's outcome is final,
//! so its offset may be committed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{FutureExt as _, StreamExt as _};

use super::super::dedup::{self, StoredReplies};
use super::super::dlq::{self, Poison, PoisonReason, ReplyTo};
use super::super::retry::Verdict;
use super::blocking::{Watched, Who};
use super::claim::{self, ClaimGuard, Claimed};
use super::record::Record;
use super::reply::{dead_letter, send_all, send_reply, undeliverable, Run, Unwritable};
use super::Shared;
use crate::transport::{Incoming, RawReplies, Reply};
use crate::{codes, deadline, RpcError, INTERNAL_SERVER_ERROR_MESSAGE};

type Item = Result<Reply, RpcError>;

/// How handling a record ended: `Ok` when its outcome is final (its offset may be committed),
/// `Err` when its dead-letter copy could not be written (the record is parked).
pub(super) type Outcome = Result<(), Unwritable>;

/// Handles `msg` to its final outcome.
pub(super) async fn process(shared: &Shared, msg: &Record) -> Outcome {
    if let Some(parked) = &msg.letter {
        // Parked after a refused dead-letter write: only that write is tried again.
        return dead_letter(shared, msg, parked.poison.clone(), parked.attempts).await;
    }
    crate::metrics::global().consumed(&msg.pattern);
    let hdrs = &msg.headers;
    let reply_to = match dlq::reply_to(hdrs) {
        Ok(r) => r,
        Err(poison) => return dead_letter(shared, msg, poison, 0).await,
    };
    if let Some(to) = &reply_to {
        if !shared.may_reply_to(&msg.pattern, to.topic) {
            let why = format!(
                "kafka_replyTopic {:?} is not a reply topic of {} (allowed: its .reply topic and KAFKA_REPLY_TOPICS)",
                to.topic, msg.pattern
            );
            return dead_letter(shared, msg, (PoisonReason::ReplyTopicNotAllowed, why), 0).await;
        }
    }
    if msg.unreadable.is_some() {
        let why = "a header key is not UTF-8 text".to_owned();
        return reject(
            shared,
            msg,
            reply_to.as_ref(),
            (PoisonReason::UnreadableRecord, why),
        )
        .await;
    }
    if reply_to.is_none() && shared.expects_reply(&msg.pattern) {
        // NestJS would run it as an event, with nobody to answer and past any check its
        // guards make of requests only: never run a request's handler that way.
        let why = format!(
            "{} is a request pattern, and the record has neither kafka_correlationId nor kafka_replyTopic",
            msg.pattern
        );
        return dead_letter(shared, msg, (PoisonReason::MissingReplyAddress, why), 0).await;
    }
    if let Some(size) = msg.oversized {
        let why = format!(
            "the payload has {size} bytes; the limit (KAFKA_MAX_MESSAGE_BYTES) is {}; not copied: the original stays in {}[{}]@{} for its retention",
            shared.settings.max_message_bytes, msg.pattern, msg.partition, msg.offset
        );
        return reject(
            shared,
            msg,
            reply_to.as_ref(),
            (PoisonReason::Oversized, why),
        )
        .await;
    }
    let payload = msg.payload();
    if let Err(poison) = dlq::check_payload(hdrs, payload, shared.settings.max_message_bytes) {
        return reject(shared, msg, reply_to.as_ref(), poison).await;
    }
    let started = Instant::now();
    match &reply_to {
        None => event(shared, msg, started).await,
        Some(to) => request(shared, msg, to, started).await,
    }
}

/// A record the handler must not see: a request with a usable reply address gets an
/// `INVALID_ARGUMENT` error reply (an unreadable one, first, so that its caller learns at once
/// even if its dead-letter copy has to wait, then a copy of its bytes); anything else is
/// dead-lettered. Logged once.
async fn reject(
    shared: &Shared,
    msg: &Record,
    reply_to: Option<&ReplyTo<'_>>,
    (reason, error): Poison,
) -> Outcome {
    let Some(to) = reply_to else {
        return dead_letter(shared, msg, (reason, error), 0).await;
    };
    let e = RpcError::invalid_argument(error.clone()).with_detail("reason", reason.as_str());
    if reason == PoisonReason::UnreadableRecord {
        // Best effort: the dead-letter copy (logged) is what keeps the record.
        let _ = send_reply(shared, to, Some(Err(e)), true, Run::new()).await;
        return dead_letter(shared, msg, (reason, error), 0).await;
    }
    tracing::warn!(
        pattern = &*msg.pattern,
        correlation_id = to.correlation_id,
        partition = msg.partition,
        offset = msg.offset,
        reason = reason.as_str(),
        error = %error,
        "poison request rejected"
    );
    match send_reply(shared, to, Some(Err(e)), true, Run::new()).await {
        Ok(()) => Ok(()),
        Err(e) => dead_letter(shared, msg, (PoisonReason::ReplyUndeliverable, e), 0).await,
    }
}

/// An event: retried in place by the policy, then dead-lettered. Never dropped.
async fn event(shared: &Shared, msg: &Record, started: Instant) -> Outcome {
    let policy = &shared.settings.retry;
    for attempt in 1u32.. {
        let called = Instant::now();
        let mut replies = call(shared, msg, None);
        let mut failure = None;
        let timeout = shared.settings.handler_timeout;
        while let Some(item) = next(&mut replies, timeout, called).await {
            if let Err(e) = item {
                failure = Some(e);
                break;
            }
        }
        // Over before the backoff: a timed-out handler is cancelled now, not after the wait.
        drop(replies);
        let Some(e) = failure else {
            log_handled(msg, "-", started, attempt, Ok(0));
            return Ok(());
        };
        match policy.verdict(&e, attempt, false) {
            Verdict::RetryAfter(wait) => {
                log_retry(msg, "-", attempt, wait, &e);
                tokio::time::sleep(wait).await;
            }
            Verdict::GiveUp => {
                // Logged once, by the dead-letter write. An event that does not decode (or
                // that its handler calls invalid) would fail the same way forever; anything
                // else failed on every attempt.
                let reason = if e.is(codes::INVALID_ARGUMENT) {
                    PoisonReason::Undecodable
                } else {
                    PoisonReason::HandlerFailed
                };
                return dead_letter(shared, msg, (reason, e.to_string()), attempt).await;
            }
        }
    }
    unreachable!("attempts are counted without end")
}

/// A request: replies as the handler yields them; a failure before any reply went out is
/// retried when the policy retries requests, else it is the error reply. With
/// de-duplication on, the request is claimed first (see [`super::claim`]).
async fn request(shared: &Shared, msg: &Record, to: &ReplyTo<'_>, started: Instant) -> Outcome {
    let mut guard = None;
    if let Some(store) = &shared.settings.dedup {
        match claim::claim(shared, store, dedup::key(&msg.pattern, to.correlation_id)).await {
            Claimed::Done(stored) => return replay(shared, msg, to, stored).await,
            Claimed::Run(claimed) => guard = Some(claimed),
        }
    }
    let policy = &shared.settings.retry;
    // No attempt after the caller's deadline: it stopped waiting.
    let deadline = msg.headers.get(deadline::HEADER).and_then(deadline::parse);
    for attempt in 1u32.. {
        let replies = call(shared, msg, Some(to.correlation_id));
        let retry = |e: &RpcError| match policy.verdict(e, attempt, true) {
            Verdict::RetryAfter(wait)
                if deadline.is_none_or(|at| SystemTime::now() + wait < at) =>
            {
                Some(wait)
            }
            _ => None,
        };
        let run = Run::new();
        match stream_replies(shared, to, replies, retry, guard.as_mut(), run).await {
            Sent::Retry(wait, e) => {
                log_retry(msg, to.correlation_id, attempt, wait, &e);
                tokio::time::sleep(wait).await;
            }
            Sent::Done(outcome, delivered) => {
                if let Err(e) = delivered {
                    undeliverable(shared, to, &e, run).await;
                    return dead_letter(
                        shared,
                        msg,
                        (PoisonReason::ReplyUndeliverable, e),
                        attempt,
                    )
                    .await;
                }
                log_handled(
                    msg,
                    to.correlation_id,
                    started,
                    attempt,
                    outcome.as_ref().map(|n| *n),
                );
                return Ok(());
            }
        }
    }
    unreachable!("attempts are counted without end")
}

/// A duplicate of a handled request: its stored replies again, the handler not called.
async fn replay(shared: &Shared, msg: &Record, to: &ReplyTo<'_>, stored: StoredReplies) -> Outcome {
    tracing::info!(
        pattern = &*msg.pattern,
        correlation_id = to.correlation_id,
        partition = msg.partition,
        offset = msg.offset,
        replies = stored.len(),
        "duplicate request: stored replies re-sent, handler not called"
    );
    let run = Run::new();
    if let Err(e) = send_all(shared, to, stored, run).await {
        undeliverable(shared, to, &e, run).await;
        return dead_letter(shared, msg, (PoisonReason::ReplyUndeliverable, e), 1).await;
    }
    Ok(())
}

enum Sent {
    /// Nothing was sent: try again after the wait.
    Retry(Duration, RpcError),
    /// Replied: the outcome, and whether every reply was delivered.
    Done(Result<usize, RpcError>, Result<(), String>),
}

/// A handler's reply stream whose drop cannot unwind into the server: a panic in the
/// handler's `Drop` is logged, and the record's outcome stands.
struct HandlerStream {
    replies: Option<RawReplies>,
    pattern: Arc<str>,
    /// The record, for the blocking watch.
    who: Who,
}

impl std::ops::Deref for HandlerStream {
    type Target = RawReplies;
    fn deref(&self) -> &RawReplies {
        self.replies.as_ref().expect("taken only on drop")
    }
}

impl std::ops::DerefMut for HandlerStream {
    fn deref_mut(&mut self) -> &mut RawReplies {
        self.replies.as_mut().expect("taken only on drop")
    }
}

impl Drop for HandlerStream {
    fn drop(&mut self) {
        let Some(replies) = self.replies.take() else {
            return;
        };
        if std::panic::catch_unwind(AssertUnwindSafe(move || drop(replies))).is_err() {
            tracing::error!(
                pattern = &*self.pattern,
                "the handler panicked while its reply stream was dropped; the panic is contained"
            );
        }
    }
}

/// Runs the handler; a panic in `handle` itself becomes NestJS's internal error.
fn call(shared: &Shared, msg: &Record, correlation_id: Option<&str>) -> HandlerStream {
    HandlerStream {
        replies: Some(start_handler(shared, msg, correlation_id)),
        pattern: msg.pattern.clone(),
        who: Who {
            server: shared.server_id,
            topic: msg.topic,
            partition: msg.partition,
            offset: msg.offset,
        },
    }
}

fn start_handler(shared: &Shared, msg: &Record, correlation_id: Option<&str>) -> RawReplies {
    let pattern = &*msg.pattern;
    let incoming = Incoming {
        pattern: msg.pattern.clone(),
        payload: msg.payload.clone().unwrap_or_default(),
        correlation_id: correlation_id.map(str::to_owned),
        headers: msg.headers.clone(),
        key: msg.key.clone(),
        partition: Some(msg.partition),
        offset: Some(msg.offset),
        timestamp: msg.timestamp,
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| shared.handler.handle(incoming))) {
        Ok(replies) => replies,
        Err(_) => {
            let e = panicked(pattern);
            Box::pin(futures_util::stream::once(async move { Err(e) }))
        }
    }
}

fn panicked(pattern: &str) -> RpcError {
    tracing::error!(pattern, "handler panicked");
    RpcError::message_only(INTERNAL_SERVER_ERROR_MESSAGE)
}

/// The handler's next reply, bounded by the handler timeout; a panic while producing it
/// becomes NestJS's internal error. After an `Err`, stop polling. A timeout is recorded in
/// `messaging_process_duration_seconds` (`attempt`: when this attempt's handler started).
async fn next(replies: &mut HandlerStream, timeout: Duration, attempt: Instant) -> Option<Item> {
    let (pattern, who) = (replies.pattern.clone(), replies.who);
    let pattern = &*pattern;
    let step = Watched::new((**replies).next(), who);
    match tokio::time::timeout(timeout, AssertUnwindSafe(step).catch_unwind()).await {
        Ok(Ok(item)) => item,
        Ok(Err(_)) => Some(Err(RpcError::message_only(INTERNAL_SERVER_ERROR_MESSAGE))),
        Err(_) => {
            crate::metrics::global().timed_out(pattern, attempt.elapsed().as_secs_f64());
            Some(Err(RpcError::deadline_exceeded(format!(
                "the handler did not finish within {} ms (KAFKA_HANDLER_TIMEOUT_MS)",
                timeout.as_millis()
            ))))
        }
    }
}

/// How long a reply is held back waiting for the next one (so that the last reply of a
/// stream can carry the disposed marker, as NestJS's own server does) before it is sent
/// without it.
const HOLD_AT_MOST: Duration = Duration::from_millis(25);

/// Sends replies as the handler yields them. Each one is held back for up to
/// [`HOLD_AT_MOST`]: if the stream ends meanwhile it goes out with the disposed marker, else it
/// is sent as it is and the end is marked by a disposed message without a value (NestJS's
/// server does both). A failure before anything was sent is handed to `retry` first. With a
/// dedup claim, every reply is also kept and stored before the last one goes out.
async fn stream_replies(
    shared: &Shared,
    to: &ReplyTo<'_>,
    mut replies: HandlerStream,
    retry: impl Fn(&RpcError) -> Option<Duration>,
    mut claim: Option<&mut ClaimGuard>,
    run: Run,
) -> Sent {
    // Called right after the handler was.
    let called = Instant::now();
    let timeout = shared.settings.handler_timeout;
    let mut sent = 0usize;
    let mut held: Option<Item> = None;
    let mut delivered = Ok(());
    let mut kept: StoredReplies = Vec::new();
    loop {
        let item = if held.is_some() {
            // `next` is cancel-safe: a flush only restarts the wait for the next item.
            match tokio::time::timeout(HOLD_AT_MOST, next(&mut replies, timeout, called)).await {
                Ok(item) => item,
                Err(_) => {
                    delivered =
                        delivered.and(send_reply(shared, to, held.take(), false, run).await);
                    sent += 1;
                    continue;
                }
            }
        } else {
            next(&mut replies, timeout, called).await
        };
        let Some(item) = item else { break };
        if let (Err(e), 0, None) = (&item, sent, &held) {
            if let Some(wait) = retry(e) {
                return Sent::Retry(wait, e.clone());
            }
        }
        let is_err = item.is_err();
        if claim.is_some() {
            kept.push(item.clone());
        }
        if let Some(prev) = held.replace(item) {
            delivered = delivered.and(send_reply(shared, to, Some(prev), false, run).await);
            sent += 1;
        }
        if is_err {
            break;
        }
    }
    drop(replies);
    let failed = match &held {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    let items = sent + usize::from(held.is_some());
    if let Some(claim) = claim.as_mut() {
        // Before the end goes out: a redelivery after it finds the replies.
        claim.store(kept).await;
    }
    delivered = delivered.and(send_reply(shared, to, held, true, run).await);
    Sent::Done(failed.map_or(Ok(items.max(1)), Err), delivered)
}

fn log_retry(msg: &Record, correlation_id: &str, attempt: u32, wait: Duration, e: &RpcError) {
    crate::metrics::global().retried(&msg.pattern);
    tracing::warn!(
        pattern = &*msg.pattern,
        correlation_id,
        partition = msg.partition,
        offset = msg.offset,
        attempt,
        backoff_ms = wait.as_millis() as u64,
        error = %e,
        "handler failed; retrying in place"
    );
}

fn log_handled(
    msg: &Record,
    correlation_id: &str,
    started: Instant,
    attempts: u32,
    outcome: Result<usize, &RpcError>,
) {
    // Field values are only computed when the event is enabled: no clock read otherwise.
    let latency_ms = || started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(replies) => tracing::info!(
            pattern = &*msg.pattern,
            correlation_id,
            partition = msg.partition,
            offset = msg.offset,
            latency_ms = latency_ms(),
            attempts,
            replies,
            outcome = "ok",
            "handled"
        ),
        Err(e) => tracing::warn!(
            pattern = &*msg.pattern,
            correlation_id,
            partition = msg.partition,
            offset = msg.offset,
            latency_ms = latency_ms(),
            attempts,
            outcome = "error",
            error = %e,
            "handled"
        ),
    }
}
