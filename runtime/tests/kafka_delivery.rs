//! Delivery semantics of the Kafka server on a real broker: failed events are retried in place
//! and dead-lettered (never dropped), a dead-letter write the broker refuses holds the offset,
//! a stuck handler holds up only its own partition and ends at the handler timeout, panics do
//! not freeze commits (nor does one in a reply stream's `Drop`), a handler whose runtime goes
//! away without an outcome leaves its offset to the next owner, reply topics are an allowlist,
//! and a new group starts at the end once the server is ready.
//!
//! Messages are produced raw, to explicit partitions, so each test knows which lane they are
//! in; handlers record every run.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod raw;
}

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::kafka::dlq::{DLQ_ATTEMPTS, DLQ_OFFSET, DLQ_REASON};
use axion_runtime::kafka::{
    ensure_topics, topic_manifest, KafkaConfig, KafkaServer, RetryPolicy, CORRELATION_ID, NEST_ERR,
    REPLY_PARTITION, REPLY_TOPIC,
};
use axion_runtime::{Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::{
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Headers as _;
use rdkafka::{ClientConfig, Message as _};
use support::broker::Broker;
use support::raw;

const PARTITIONS: i32 = 3;
const EVENT: &str = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
const CREATE: &str = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
const CREATE_REPLY: &str = GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT;

fn cfg(broker: &Broker, group: &str) -> axion_runtime::kafka::KafkaConfigBuilder {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(group)
        .server_group(group)
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(PARTITIONS as i64)
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

/// What a handler does with one message, by its name (`project.name` of an event, `name` of a
/// request).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Ok,
    /// Fails with UNAVAILABLE this many times, then succeeds.
    FailTimes(u32),
    /// Fails with UNAVAILABLE on every attempt.
    FailAlways,
    /// Fails with NOT_FOUND (not retriable).
    NotFound,
    /// Panics inside the handler's future.
    PanicInFuture,
    /// Panics in `Handler::handle` itself, before returning a stream.
    PanicInHandle,
    /// Never finishes.
    Hang,
    /// Succeeds; its reply stream panics when it is dropped.
    PanicOnDrop,
}

/// A reply stream that panics when dropped (a handler with a buggy guard in its state).
struct PanicsOnDrop(RawReplies);

impl axion_runtime::futures::Stream for PanicsOnDrop {
    type Item = Result<axion_runtime::Reply, RpcError>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a handler's guard panicked when its stream was dropped");
    }
}

/// A handler over the graph contract that records every run: (name, partition order).
#[derive(Clone, Default)]
struct Recorder {
    acts: Arc<HashMap<String, Act>>,
    runs: Arc<Mutex<Vec<String>>>,
    successes: Arc<Mutex<Vec<String>>>,
    /// Handler futures alive now (created, not yet dropped).
    live: Arc<AtomicUsize>,
}

/// Counts a handler future as alive until it is dropped.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Alive(live.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Recorder {
    fn with(acts: &[(&str, Act)]) -> Self {
        Recorder {
            acts: Arc::new(acts.iter().map(|(n, a)| (n.to_string(), *a)).collect()),
            ..Default::default()
        }
    }
    fn runs_of(&self, name: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
    fn successes(&self) -> Vec<String> {
        self.successes.lock().unwrap().clone()
    }
}

fn name_of(payload: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    v.pointer("/project/name")
        .or_else(|| v.pointer("/name"))
        .and_then(|n| n.as_str())
        .unwrap_or("?")
        .to_owned()
}

impl Handler for Recorder {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let name = name_of(&incoming.payload);
        let act = self.acts.get(&name).copied().unwrap_or(Act::Ok);
        let attempt = {
            let mut runs = self.runs.lock().unwrap();
            runs.push(name.clone());
            runs.iter().filter(|n| **n == name).count() as u32
        };
        if act == Act::PanicInHandle {
            panic!("handler bug on {name}");
        }
        let successes = self.successes.clone();
        let request = incoming.is_request();
        let alive = Alive::new(&self.live);
        let replies: RawReplies = Box::pin(axion_runtime::futures::stream::once(async move {
            let _alive = alive;
            let outcome = match act {
                Act::Ok | Act::PanicOnDrop => Ok(()),
                Act::FailTimes(n) if attempt > n => Ok(()),
                Act::FailTimes(_) | Act::FailAlways => {
                    Err(RpcError::unavailable(format!("database down ({name})")))
                }
                Act::NotFound => Err(RpcError::not_found(format!("no such thing: {name}"))),
                Act::PanicInFuture => panic!("handler bug in the future of {name}"),
                Act::PanicInHandle => unreachable!(),
                Act::Hang => std::future::pending().await,
            };
            outcome.map(|()| {
                successes.lock().unwrap().push(name.clone());
                let payload = if request {
                    serde_json::to_vec(&serde_json::json!({"project": {"name": name}})).unwrap()
                } else {
                    Vec::new()
                };
                payload.into()
            })
        }));
        let replies: RawReplies = if act == Act::PanicOnDrop {
            Box::pin(PanicsOnDrop(replies))
        } else {
            replies
        };
        if request {
            return replies;
        }
        // Event handlers yield nothing on success: drop the placeholder item.
        use axion_runtime::futures::StreamExt as _;
        Box::pin(replies.filter(|item| std::future::ready(item.is_err())))
    }
}

fn event_payload(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"project": {"name": name}})).unwrap()
}

fn request_payload(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "name": name })).unwrap()
}

async fn send_event(p: &rdkafka::producer::FutureProducer, partition: i32, name: &str) -> i64 {
    raw::send(p, EVENT, Some(partition), &[], Some(&event_payload(name)))
        .await
        .1
}

async fn send_request(
    p: &rdkafka::producer::FutureProducer,
    partition: i32,
    name: &str,
    reply_topic: &str,
) -> i64 {
    let headers: [(&str, &[u8]); 3] = [
        (CORRELATION_ID, name.as_bytes()),
        (REPLY_TOPIC, reply_topic.as_bytes()),
        (REPLY_PARTITION, b"0"),
    ];
    raw::send(
        p,
        CREATE,
        Some(partition),
        &headers,
        Some(&request_payload(name)),
    )
    .await
    .1
}

/// The committed positions of the server group `<group>-server` in `topic` (-1: none).
fn committed(address: &str, group: &str, topic: &str) -> Vec<i64> {
    raw::committed(address, &format!("{group}-server"), topic, PARTITIONS)
}

/// Polls `cond` every 50 ms for up to `within`; returns whether it held.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

fn header_bytes(m: &rdkafka::message::OwnedMessage, key: &str) -> Option<Vec<u8>> {
    m.headers()?
        .iter()
        .filter(|h| h.key == key)
        .last()
        .and_then(|h| h.value.map(<[u8]>::to_vec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_retried_in_order_then_dead_lettered() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "retry").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let recorder = Recorder::with(&[
        ("flaky", Act::FailTimes(2)),
        ("doomed", Act::FailAlways),
        ("missing", Act::NotFound),
        ("panics", Act::PanicInFuture),
    ]);
    let server = KafkaServer::builder(&config, recorder.clone())
        .retry(fast_retries(3))
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let producer = raw::producer(&address);
    let order = [
        "e0", "flaky", "e2", "doomed", "e4", "missing", "e6", "panics", "e8",
    ];
    let mut offsets = BTreeMap::new();
    for name in order {
        offsets.insert(name, send_event(&producer, 0, name).await);
    }
    // Another partition is served meanwhile.
    for i in 0..5 {
        send_event(&producer, 1, &format!("other{i}")).await;
    }
    assert!(
        eventually(Duration::from_secs(30), || recorder
            .successes()
            .contains(&"e8".to_owned()))
        .await,
        "the last event was handled: {:?}",
        recorder.successes()
    );
    let on_partition_0: Vec<String> = recorder
        .successes()
        .into_iter()
        .filter(|n| !n.starts_with("other"))
        .collect();
    assert_eq!(
        on_partition_0,
        ["e0", "flaky", "e2", "e4", "e6", "e8"],
        "handled once each, in partition order (retries in place)"
    );
    assert_eq!(recorder.runs_of("flaky"), 3, "failed twice, then succeeded");
    assert_eq!(recorder.runs_of("doomed"), 3, "bounded by max_attempts");
    assert_eq!(recorder.runs_of("missing"), 1, "NOT_FOUND is not retried");
    assert_eq!(
        recorder.runs_of("panics"),
        3,
        "a panic is INTERNAL: retried"
    );
    assert_eq!(recorder.runs_of("e0"), 1);
    // Exactly the three given-up events are in the dead-letter topic, with their attempts.
    let dead = raw::read_all(
        &address,
        &format!("{EVENT}.dlq"),
        PARTITIONS,
        4,
        Duration::from_secs(5),
    );
    // (name, reason, attempts, offset)
    type Letter = (String, Vec<u8>, Vec<u8>, Vec<u8>);
    let mut got: Vec<Letter> = dead
        .iter()
        .map(|m| {
            (
                name_of(m.payload().unwrap_or_default()),
                header_bytes(m, DLQ_REASON).unwrap(),
                header_bytes(m, DLQ_ATTEMPTS).unwrap(),
                header_bytes(m, DLQ_OFFSET).unwrap(),
            )
        })
        .collect();
    got.sort();
    let at = |n: &str| offsets[n].to_string().into_bytes();
    assert_eq!(
        got,
        vec![
            (
                "doomed".into(),
                b"handler-failed".to_vec(),
                b"3".to_vec(),
                at("doomed")
            ),
            (
                "missing".into(),
                b"handler-failed".to_vec(),
                b"1".to_vec(),
                at("missing")
            ),
            (
                "panics".into(),
                b"handler-failed".to_vec(),
                b"3".to_vec(),
                at("panics")
            ),
        ]
    );
    // The retries and dead letters are on /metrics (other tests of this binary add to the
    // same pattern's counts, never take away).
    let page = axion_runtime::metrics::global().render();
    let count = |prefix: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let retries = count(&format!(
        "axion_retries_total{{messaging_destination_name=\"{EVENT}\"}}"
    ));
    let dead = count(&format!(
        "axion_dead_letters_total{{messaging_destination_name=\"{EVENT}\",reason=\"handler-failed\"}}"
    ));
    // flaky 2 + doomed 2 + panics 2 retries; doomed, missing, panics dead-lettered.
    assert!(
        retries >= 6.0 && dead >= 3.0,
        "retries {retries}, dead letters {dead}\n{page}"
    );
    // Every offset of partition 0 is committed (moved on past the dead letters).
    assert!(
        eventually(Duration::from_secs(10), || committed(
            &address, "retry", EVENT
        )[0] == offsets["e8"] + 1)
        .await,
        "committed: {:?}",
        committed(&address, "retry", EVENT)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_write_holds_the_offset() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "dlq-down").build().unwrap();
    // Every topic of the contract but the event's dead-letter topic.
    let dlq = format!("{EVENT}.dlq");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let specs = topic_manifest(&[&GRAPH_SERVICE_CONTRACT], PARTITIONS, 1);
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .filter(|s| s.name != dlq)
        .map(|s| NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap();
    let recorder = Recorder::with(&[("doomed", Act::FailAlways)]);
    let server = KafkaServer::builder(&config, recorder.clone())
        .retry(fast_retries(2))
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let producer = raw::producer(&address);
    let first = send_event(&producer, 0, "first").await;
    let doomed = send_event(&producer, 0, "doomed").await;
    send_event(&producer, 0, "behind").await;
    assert!(
        eventually(Duration::from_secs(10), || recorder.runs_of("doomed") == 2).await,
        "both attempts ran"
    );
    // The dead-letter write keeps failing (no such topic): for 12 s the offset stays at the
    // doomed event and the event behind it waits.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let held = committed(&address, "dlq-down", EVENT)[0];
    assert_eq!(
        held, doomed,
        "committed up to, not past, the doomed event (first at {first})"
    );
    assert_eq!(
        recorder.runs_of("behind"),
        0,
        "order kept behind the undelivered dead letter"
    );
    // The topic appears: the retried write goes through and the partition moves on.
    let dlq_topic = [NewTopic::new(&dlq, PARTITIONS, TopicReplication::Fixed(1))];
    admin
        .create_topics(&dlq_topic, &AdminOptions::new())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(40), || recorder.runs_of("behind") == 1).await,
        "the partition resumed once the dead letter was written"
    );
    let dead = raw::read_all(&address, &dlq, PARTITIONS, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "one dead letter, written once it could be");
    assert_eq!(name_of(dead[0].payload().unwrap()), "doomed");
    server.shutdown().await;
}

/// Replies seen: (correlation id, when, error).
type Replies = Arc<Mutex<Vec<(String, Instant, Option<RpcError>)>>>;

/// Collects replies of the create-project reply topic (partition 0) by correlation id.
fn reply_reader(address: &str, topic: &str) -> Replies {
    let out = Arc::new(Mutex::new(Vec::new()));
    let consumer = raw::reader(address, topic, 1);
    let sink = out.clone();
    std::thread::spawn(move || {
        // Bounded: the tests end long before.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && Arc::strong_count(&sink) > 1 {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                let id = raw::header(&m.detach(), CORRELATION_ID).unwrap_or_default();
                let err = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == NEST_ERR))
                    .and_then(|h| h.value)
                    .map(RpcError::from_json);
                sink.lock().unwrap().push((id, Instant::now(), err));
            }
        }
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_handler_holds_up_only_its_partition_until_the_handler_timeout() {
    let broker = Broker::start();
    let address = broker.address();
    // Few global slots: the old loop ran out of them behind one stuck partition.
    let config = cfg(&broker, "stuck").max_in_flight(4).build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let recorder = Recorder::with(&[("stuck", Act::Hang)]);
    let timeout = Duration::from_secs(8);
    let server = KafkaServer::builder(&config, recorder.clone())
        .handler_timeout(timeout)
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let replies = reply_reader(&address, CREATE_REPLY);
    let producer = raw::producer(&address);
    let sent_stuck = Instant::now();
    send_request(&producer, 0, "stuck", CREATE_REPLY).await;
    for i in 0..30 {
        send_request(&producer, 0, &format!("behind{i}"), CREATE_REPLY).await;
    }
    let others: Vec<String> = (0..60).map(|i| format!("other{i}")).collect();
    for (i, name) in others.iter().enumerate() {
        send_request(&producer, 1 + (i % 2) as i32, name, CREATE_REPLY).await;
    }
    let answered = |name: &str| replies.lock().unwrap().iter().any(|(id, _, _)| id == name);
    assert!(
        eventually(timeout + Duration::from_secs(20), || answered("behind29")).await,
        "the partition behind the stuck handler resumed"
    );
    let replies = replies.lock().unwrap().clone();
    let at = |name: &str| replies.iter().find(|(id, _, _)| id == name).unwrap().1;
    let (_, stuck_at, stuck_err) = replies.iter().find(|(id, _, _)| id == "stuck").unwrap();
    let stuck_err = stuck_err.as_ref().expect("an error reply");
    assert_eq!(stuck_err.code(), Some("DEADLINE_EXCEEDED"), "{stuck_err:?}");
    let waited = *stuck_at - sent_stuck;
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(10),
        "ended at the handler timeout: {waited:?}"
    );
    for name in &others {
        assert!(
            at(name) < *stuck_at,
            "{name} (partitions 1 and 2) was answered while partition 0 was stuck"
        );
    }
    let behind: Vec<&str> = replies
        .iter()
        .map(|(id, _, _)| id.as_str())
        .filter(|id| id.starts_with("behind"))
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!("behind{i}")).collect();
    assert_eq!(
        behind, expected,
        "answered after the stuck one, in order, once each"
    );
    assert_eq!(server.revocations(), 0, "the member was never ejected");
    assert_eq!(server.assignments(), 1);
    assert_eq!(recorder.runs_of("stuck"), 1);
    // The timeout is on /metrics as a processing that ended with DEADLINE_EXCEEDED (no other
    // test of this binary has a handler time out).
    let page = axion_runtime::metrics::global().render();
    let timed_out = format!(
        "messaging_process_duration_seconds_count{{messaging_destination_name=\"{CREATE}\",error_type=\"DEADLINE_EXCEEDED\"}} 1"
    );
    assert!(
        page.lines().any(|l| l == timed_out),
        "{timed_out} not on the page:\n{page}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_handler_past_its_timeout_is_cancelled_before_the_retry_backoff() {
    let broker = Broker::start();
    let config = cfg(&broker, "cancelled").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let recorder = Recorder::with(&[("hangs", Act::Hang)]);
    let backoff = Duration::from_secs(20);
    let server = KafkaServer::builder(&config, recorder.clone())
        .handler_timeout(Duration::from_secs(1))
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: backoff,
            max_backoff: backoff,
            ..RetryPolicy::default()
        })
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    send_event(&raw::producer(&broker.address()), 0, "hangs").await;
    assert!(
        eventually(Duration::from_secs(20), || recorder.runs_of("hangs") == 1).await,
        "the event reached its handler"
    );
    // Past the 1 s timeout, inside the 20 s backoff before the second attempt.
    assert!(
        eventually(Duration::from_secs(5), || recorder
            .live
            .load(Ordering::SeqCst)
            == 0)
        .await,
        "the timed-out handler's future is dropped when it times out, not after the backoff"
    );
    assert_eq!(recorder.runs_of("hangs"), 1, "still waiting to retry");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_their_error_reply_unless_request_retries_are_on() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "requests").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let replies = reply_reader(&address, CREATE_REPLY);
    let producer = raw::producer(&address);
    for retry_requests in [false, true] {
        let name = format!("flaky-{retry_requests}");
        let recorder = Recorder::with(&[(name.as_str(), Act::FailTimes(2))]);
        let policy = RetryPolicy {
            retry_requests,
            ..fast_retries(3)
        };
        let server = KafkaServer::builder(&config, recorder.clone())
            .retry(policy)
            .start()
            .await
            .unwrap();
        assert!(server.wait_assigned(Duration::from_secs(30)).await);
        send_request(&producer, 0, &name, CREATE_REPLY).await;
        assert!(
            eventually(Duration::from_secs(15), || replies
                .lock()
                .unwrap()
                .iter()
                .any(|(id, _, _)| *id == name))
            .await,
            "{name} answered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got: Vec<Option<RpcError>> = replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _, _)| *id == name)
            .map(|(_, _, e)| e.clone())
            .collect();
        assert_eq!(got.len(), 1, "{name}: one reply");
        if retry_requests {
            assert!(got[0].is_none(), "retried until it succeeded: {got:?}");
            assert_eq!(recorder.runs_of(&name), 3);
        } else {
            assert_eq!(got[0].as_ref().and_then(|e| e.code()), Some("UNAVAILABLE"));
            assert_eq!(recorder.runs_of(&name), 1, "the caller decides: no retry");
        }
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_not_retried_past_its_deadline() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "deadline-retries").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let replies = reply_reader(&address, CREATE_REPLY);
    let producer = raw::producer(&address);
    let name = "doomed";
    let recorder = Recorder::with(&[(name, Act::FailAlways)]);
    let policy = RetryPolicy {
        retry_requests: true,
        max_attempts: 10,
        initial_backoff: Duration::from_millis(300),
        max_backoff: Duration::from_millis(300),
        jitter: 0.0,
        ..RetryPolicy::default()
    };
    let server = KafkaServer::builder(&config, recorder.clone())
        .retry(policy)
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    // The caller waits 1 s: at most 4 attempts 300 ms apart fit (10 without the deadline).
    let deadline =
        axion_runtime::deadline::format(std::time::SystemTime::now() + Duration::from_millis(1000));
    let headers: [(&str, &[u8]); 4] = [
        (CORRELATION_ID, name.as_bytes()),
        (REPLY_TOPIC, CREATE_REPLY.as_bytes()),
        (REPLY_PARTITION, b"0"),
        (axion_runtime::deadline::HEADER, deadline.as_bytes()),
    ];
    raw::send(
        &producer,
        CREATE,
        Some(0),
        &headers,
        Some(&request_payload(name)),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), || replies
            .lock()
            .unwrap()
            .iter()
            .any(|(id, _, _)| id == name))
        .await,
        "answered"
    );
    let runs = recorder.runs_of(name);
    assert!((1..=4).contains(&runs), "{runs} attempts");
    let got: Vec<Option<RpcError>> = replies
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _, _)| id == name)
        .map(|(_, _, e)| e.clone())
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().and_then(|e| e.code()), Some("UNAVAILABLE"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_do_not_freeze_commits_and_reply_topics_are_an_allowlist() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "guarded").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let extra = "gateway.replies";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(extra, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let recorder = Recorder::with(&[
        ("boom", Act::PanicInHandle),
        ("drop-bomb", Act::PanicOnDrop),
    ]);
    let server = KafkaServer::builder(&config, recorder.clone())
        .allow_reply_topic(extra)
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let replies = reply_reader(&address, CREATE_REPLY);
    let extra_replies = reply_reader(&address, extra);
    let producer = raw::producer(&address);
    send_request(&producer, 0, "boom", CREATE_REPLY).await;
    send_request(&producer, 0, "after-boom", CREATE_REPLY).await;
    // Its panic is contained where the stream is dropped: the reply still goes out.
    send_request(&producer, 0, "drop-bomb", CREATE_REPLY).await;
    let injected = send_request(&producer, 0, "injected", EVENT).await;
    let last = send_request(&producer, 0, "via-gateway", extra).await;
    assert!(
        eventually(Duration::from_secs(20), || extra_replies
            .lock()
            .unwrap()
            .len()
            == 1)
        .await,
        "a configured extra reply topic is answered"
    );
    assert!(
        eventually(Duration::from_secs(5), || replies.lock().unwrap().len()
            == 3)
        .await,
        "every request answered, the one whose stream panics on drop too"
    );
    let replies = replies.lock().unwrap().clone();
    assert_eq!(replies[0].0, "boom");
    assert_eq!(
        replies[0].2.as_ref().map(|e| e.message.as_str()),
        Some("Internal server error"),
        "a panic in handle() is NestJS's internal error"
    );
    assert_eq!(replies[1].0, "after-boom");
    assert!(replies[1].2.is_none());
    assert_eq!(replies[2].0, "drop-bomb");
    assert!(replies[2].2.is_none(), "{:?}", replies[2].2);
    assert_eq!(
        recorder.runs_of("drop-bomb"),
        1,
        "run once, not redelivered"
    );
    // The injected reply address is refused: dead-lettered, nothing written to the event topic.
    let dead = raw::read_all(
        &address,
        &format!("{CREATE}.dlq"),
        PARTITIONS,
        2,
        Duration::from_secs(5),
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(
        header_bytes(&dead[0], DLQ_REASON).as_deref(),
        Some(&b"reply-topic-not-allowed"[..])
    );
    assert_eq!(
        header_bytes(&dead[0], DLQ_OFFSET),
        Some(injected.to_string().into_bytes())
    );
    let in_event_topic = raw::read_all(&address, EVENT, PARTITIONS, 1, Duration::from_secs(3));
    assert!(
        in_event_topic.is_empty(),
        "no reply was written into the event topic"
    );
    assert_eq!(recorder.runs_of("injected"), 0, "the handler never saw it");
    // Commits went past the panic.
    assert!(
        eventually(Duration::from_secs(10), || committed(
            &address, "guarded", CREATE
        )[0] == last + 1)
        .await,
        "committed: {:?}",
        committed(&address, "guarded", CREATE)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_at_the_end_and_readiness_loses_nothing() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "fresh").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let producer = raw::producer(&address);
    for p in 0..PARTITIONS {
        send_event(&producer, p, &format!("old{p}")).await;
    }
    let recorder = Recorder::default();
    let server = KafkaServer::start(&config, recorder.clone()).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    assert!(server.is_ready());
    // Produced right after readiness, before any fetch could have resolved `latest`.
    for p in 0..PARTITIONS {
        send_event(&producer, p, &format!("new{p}")).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || recorder.successes().len()
            >= PARTITIONS as usize)
        .await,
        "every event produced after readiness was handled: {:?}",
        recorder.successes()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut seen = recorder.successes();
    seen.sort();
    assert_eq!(
        seen,
        ["new0", "new1", "new2"],
        "the old events were not replayed"
    );
    // The start positions were committed at assignment: a later member of the group (this
    // one restarted) does not replay either.
    server.shutdown().await;
    let again = Recorder::default();
    let server = KafkaServer::start(&config, again.clone()).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    send_event(&producer, 0, "after-restart").await;
    assert!(eventually(Duration::from_secs(15), || !again.successes().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(again.successes(), ["after-restart"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_handler_per_partition_keeps_each_partition_in_order() {
    const PER_PARTITION: usize = 40;
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "ordered").build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    // Handlers take a random-ish time, so that out-of-order completion would show.
    let recorder = Recorder::with(&[]);
    let slow = Jittery(recorder.clone());
    let server = KafkaServer::start(&config, slow).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let producer = raw::producer(&address);
    for seq in 0..PER_PARTITION {
        for p in 0..PARTITIONS {
            send_event(&producer, p, &format!("p{p}-{seq:03}")).await;
        }
    }
    let total = PER_PARTITION * PARTITIONS as usize;
    assert!(
        eventually(Duration::from_secs(60), || recorder.successes().len()
            >= total)
        .await,
        "handled {} of {total}",
        recorder.successes().len()
    );
    let successes = recorder.successes();
    assert_eq!(successes.len(), total, "each once");
    for p in 0..PARTITIONS {
        let seen: Vec<&String> = successes
            .iter()
            .filter(|n| n.starts_with(&format!("p{p}-")))
            .collect();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "partition {p} handled out of order");
        assert_eq!(seen.len(), PER_PARTITION);
    }
    // The same through the generated client, keyed: one entity's events in the order emitted
    // (the default of one handler per partition, and the key choosing one partition).
    const KEYED: usize = 30;
    let kafka = axion_runtime::kafka::KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client =
        contracts::axion::graph::v1::graph_service_client::GraphServiceClient::new(kafka.client());
    for seq in 0..KEYED {
        let event = contracts::axion::graph::v1::ProjectCreatedEvent {
            project: Some(contracts::axion::graph::v1::Project {
                name: format!("entity-7-{seq:03}"),
                ..Default::default()
            }),
        };
        client
            .project_created_with(&event, axion_runtime::CallOptions::new().key("entity-7"))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), || recorder.successes().len()
            >= total + KEYED)
        .await,
        "keyed: handled {} of {KEYED}",
        recorder.successes().len() - total
    );
    let keyed: Vec<String> = recorder.successes()[total..].to_vec();
    let mut sorted = keyed.clone();
    sorted.sort();
    assert_eq!(keyed, sorted, "one key's events handled out of order");
    assert_eq!(keyed.len(), KEYED);

    // Partitions ran in parallel: their events interleave.
    let first_of = |p: i32| {
        successes
            .iter()
            .position(|n| n.starts_with(&format!("p{p}-")))
            .unwrap()
    };
    let last_of = |p: i32| {
        successes
            .iter()
            .rposition(|n| n.starts_with(&format!("p{p}-")))
            .unwrap()
    };
    assert!(
        first_of(1) < last_of(0) && first_of(2) < last_of(1),
        "partitions were serialised"
    );
    server.shutdown().await;
}

/// Delays each message by 0–15 ms (from its name), then hands it to the recorder.
#[derive(Clone)]
struct Jittery(Recorder);

impl Handler for Jittery {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        use axion_runtime::futures::StreamExt as _;
        let delay = name_of(&incoming.payload)
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
            % 16;
        let inner = self.0.clone();
        Box::pin(
            axion_runtime::futures::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                inner.handle(incoming)
            })
            .flatten(),
        )
    }
}

/// A handler task that ends without an outcome — here its runtime is dropped, as a `main` that
/// returns without `shutdown()` does — leaves its offset uncommitted: the next server of the
/// group runs the event again.
#[test]
fn a_handler_whose_runtime_is_dropped_leaves_its_record_to_the_next_server() {
    let broker = Broker::start();
    let address = broker.address();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let config = cfg(&broker, "runtime-dropped")
        .drain_timeout_ms(1_000)
        .build()
        .unwrap();
    let first = runtime();
    let recorder = Recorder::with(&[("held", Act::Hang)]);
    let (server, held) = first.block_on(async {
        ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
            .await
            .unwrap();
        let server = KafkaServer::start(&config, recorder.clone()).await.unwrap();
        assert!(server.wait_assigned(Duration::from_secs(30)).await);
        let held = send_event(&raw::producer(&address), 0, "held").await;
        assert!(eventually(Duration::from_secs(10), || recorder.runs_of("held") == 1).await);
        (server, held)
    });
    // The handler task goes with its runtime, without an outcome; the consumer thread lives on
    // and keeps committing what finished. It must not commit the vanished record: watched for
    // 2 s (20 commit ticks), as long as a wrong commit would take to show.
    drop(first);
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        assert!(
            committed(&address, "runtime-dropped", EVENT)[0] <= held,
            "committed past a record whose handler never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server); // stops without shutdown(): drains, commits what is final, leaves
    let second = runtime();
    second.block_on(async {
        let recorder = Recorder::with(&[]);
        let server = KafkaServer::start(&config, recorder.clone()).await.unwrap();
        assert!(
            eventually(Duration::from_secs(60), || recorder
                .successes()
                .contains(&"held".to_owned()))
            .await,
            "the next server runs the record again"
        );
        server.shutdown().await;
    });
}
