//! Process faults on a real broker: a Rust server in its own process is killed with SIGKILL
//! under load and started again. Nothing vanishes: every request is answered or fails with a
//! timeout at the caller, and every request whose handler ran in the killed process without
//! an answer reaching the caller is handled again by the new process (at-least-once).
//! Duplicates are counted. Then: with de-duplication on, a redelivered request is answered
//! from the store and its handler runs once per correlation id.
//!
//! The server process is this test binary itself, re-run with `AXION_FAULT_SERVER` set.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    pub mod procs;
    #[allow(dead_code)]
    pub mod raw;
}

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::kafka::dedup::{Claim, StoredReplies};
use axion_runtime::kafka::{
    ensure_topics, DedupStore, FileDedup, KafkaClient, KafkaConfig, KafkaServer, CORRELATION_ID,
    NEST_ERR,
};
use axion_runtime::{codes, Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, Project, GRAPH_SERVICE_CONTRACT,
    GRAPH_SERVICE_REPLY_TOPICS,
};
use rdkafka::message::Headers as _;
use rdkafka::Message as _;
use support::broker::Broker;
use support::procs::{terminate, wait_for, Killer, LogsOnFailure};
use support::raw;

const SERVER_ENV: &str = "AXION_FAULT_SERVER";
const REQUESTS: usize = 300;
const LANES: usize = 8;
const HANDLER_DELAY: Duration = Duration::from_millis(30);

fn cfg(address: &str, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([address.to_owned()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        // Generous: a request sent while the server is down waits for the restart.
        .request_timeout_ms(90_000)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

/// Creates projects; records every handler run (the project name, unique per request) in a
/// file before working, and says which process generation answered in the description.
struct Recording {
    generation: String,
    ran: Mutex<std::fs::File>,
    delay: Duration,
}

impl Handler for Recording {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let request = axion_runtime::json::decode::<CreateProjectRequest>(&incoming.payload);
        if let Ok(r) = &request {
            let mut ran = self.ran.lock().unwrap();
            ran.write_all(format!("{}\n", r.name).as_bytes()).unwrap();
        }
        let generation = self.generation.clone();
        let delay = self.delay;
        Box::pin(axion_runtime::futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            let request = request?;
            axion_runtime::json::encode(&CreateProjectResponse {
                project: Some(Project {
                    name: request.name,
                    description: generation,
                    ..Default::default()
                }),
            })
            .map(Into::into)
        }))
    }
}

/// Server mode: serve until killed (bounded), announcing readiness with a file.
async fn serve_in_this_process(dir: &Path) {
    let generation = std::env::var("AXION_FAULT_GENERATION").unwrap();
    let address = std::env::var("AXION_FAULT_BROKER").unwrap();
    // The runtime's own account (assignments, revokes, commits, warnings), shown if the test
    // fails.
    let log = std::fs::File::create(dir.join(format!("log-{generation}"))).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "axion_runtime=info".to_owned()),
        )
        .with_writer(Mutex::new(log))
        .with_ansi(false)
        .init();
    let ran = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("ran-{generation}")))
        .unwrap();
    let handler = Recording {
        generation: generation.clone(),
        ran: Mutex::new(ran),
        delay: HANDLER_DELAY,
    };
    let server = KafkaServer::start(&cfg(&address, "fault-server"), handler)
        .await
        .unwrap();
    if server.wait_assigned(Duration::from_secs(60)).await {
        std::fs::write(dir.join(format!("ready-{generation}")), b"").unwrap();
    }
    // Bounded: the parent kills or stops us long before this.
    tokio::select! {
        _ = axion_runtime::shutdown_signal() => {}
        _ = tokio::time::sleep(Duration::from_secs(240)) => {}
    }
    server.shutdown().await;
    std::fs::write(dir.join(format!("stopped-{generation}")), b"").unwrap();
}

fn spawn_server(dir: &Path, address: &str, generation: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_9_under_load_loses_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVER_ENV, dir)
        .env("AXION_FAULT_GENERATION", generation.to_string())
        .env("AXION_FAULT_BROKER", address)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn ran(dir: &Path, generation: u32) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("ran-{generation}")))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Default)]
struct Outcome {
    /// Request name -> the process generation that answered it.
    answered_by: Mutex<BTreeMap<String, String>>,
    timed_out: AtomicUsize,
    other: Mutex<Vec<String>>,
    sent: AtomicUsize,
}

/// `REQUESTS` creates named `r<n>` from `LANES` concurrent callers, recorded in `outcome`.
fn load(client: &GraphServiceClient, outcome: &Arc<Outcome>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..LANES)
        .map(|lane| {
            let client = client.clone();
            let outcome = outcome.clone();
            tokio::spawn(async move {
                for n in (lane..REQUESTS).step_by(LANES) {
                    let name = format!("r{n}");
                    outcome.sent.fetch_add(1, Ordering::SeqCst);
                    let request = CreateProjectRequest {
                        name: name.clone(),
                        ..Default::default()
                    };
                    match client.create_project(&request).await {
                        Ok(reply) => {
                            let project = reply.project.unwrap_or_default();
                            assert_eq!(project.name, name, "a reply to another request");
                            outcome
                                .answered_by
                                .lock()
                                .unwrap()
                                .insert(name, project.description);
                        }
                        Err(e) if e.is(codes::DEADLINE_EXCEEDED) => {
                            outcome.timed_out.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => outcome.other.lock().unwrap().push(format!("{name}: {e}")),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing() {
    if let Some(dir) = std::env::var_os(SERVER_ENV) {
        return serve_in_this_process(Path::new(&dir)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let broker = Broker::start();
    let address = broker.address();
    ensure_topics(&cfg(&address, "setup"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();

    let _logs = LogsOnFailure {
        dir: &dir,
        generations: &[1, 2],
    };
    let mut first = Killer(Some(spawn_server(&dir, &address, 1)));
    assert!(
        wait_for(&dir.join("ready-1"), Duration::from_secs(90)),
        "first server process never got partitions"
    );

    let kafka = KafkaClient::connect(&cfg(&address, "fault-caller"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let outcome = Arc::new(Outcome::default());
    let lanes = load(&client, &outcome);

    // Kill mid-load: a third of the requests answered, handlers in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while outcome.answered_by.lock().unwrap().len() < REQUESTS / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answered_before_kill = outcome.answered_by.lock().unwrap().len();
    assert!(answered_before_kill >= REQUESTS / 3, "load never got going");
    first.0.as_mut().unwrap().kill().unwrap(); // SIGKILL: no commit, no leave
    first.0.take().unwrap().wait().unwrap();
    let ran_first: Vec<String> = ran(&dir, 1);
    // Requests keep arriving while no server runs; then a new process takes over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _second = Killer(Some(spawn_server(&dir, &address, 2)));

    for lane in lanes {
        lane.await.unwrap();
    }
    let ran_second = ran(&dir, 2);
    let answered_by = outcome.answered_by.lock().unwrap().clone();
    let sent = outcome.sent.load(Ordering::SeqCst);
    let timed_out = outcome.timed_out.load(Ordering::SeqCst);
    let other = outcome.other.lock().unwrap().clone();
    let answered = answered_by.len();
    let unanswered: Vec<String> = (0..REQUESTS)
        .map(|n| format!("r{n}"))
        .filter(|name| !answered_by.contains_key(name))
        .collect();

    let second: BTreeSet<&String> = ran_second.iter().collect();
    let mut runs: HashMap<&String, usize> = HashMap::new();
    for name in ran_first.iter().chain(&ran_second) {
        *runs.entry(name).or_default() += 1;
    }
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let answered_by_first = answered_by.values().filter(|g| *g == "1").count();
    let answered_by_second = answered_by.values().filter(|g| *g == "2").count();
    eprintln!(
        "kill -9 under load: sent {sent}, answered {answered} (first process {answered_by_first}, \
         second {answered_by_second}), timed out {timed_out}, unanswered {}, other errors {}, \
         handler runs {} + {}, duplicates {duplicates}",
        unanswered.len(),
        other.len(),
        ran_first.len(),
        ran_second.len()
    );
    assert!(other.is_empty(), "calls failed otherwise: {other:?}");
    assert_eq!(sent, REQUESTS);
    let where_ran = |name: &String| {
        let first = ran_first.iter().filter(|n| *n == name).count();
        let second = ran_second.iter().filter(|n| *n == name).count();
        format!("{name} (ran {first}× in the first process, {second}× in the second)")
    };
    let unanswered: Vec<String> = unanswered.iter().map(where_ran).collect();
    assert!(unanswered.is_empty(), "never answered: {unanswered:?}");
    assert_eq!(
        timed_out, 0,
        "calls timed out: a request no handler answered"
    );
    assert!(answered_by_second > 0, "the new process served");
    // Every request the first process started but did not answer was handled again.
    let not_redelivered: Vec<&String> = ran_first
        .iter()
        .filter(|name| answered_by.get(*name).map(String::as_str) != Some("1"))
        .filter(|name| !second.contains(name))
        .collect();
    let in_flight_at_kill = ran_first
        .iter()
        .filter(|name| answered_by.get(*name).map(String::as_str) != Some("1"))
        .count();
    eprintln!("handled by the killed process without an answer from it: {in_flight_at_kill}, all handled again");
    assert!(
        in_flight_at_kill > 0,
        "nothing was in flight at the kill: the redelivery check would test nothing"
    );
    assert!(
        not_redelivered.is_empty(),
        "handled by the killed process, never answered by it, not redelivered: {not_redelivered:?}"
    );
    // Every answer came from a handler run, and no handler ran for a request never sent.
    for name in answered_by.keys() {
        assert!(
            runs.contains_key(name),
            "{name} answered without a handler run"
        );
    }
    let sent_names: BTreeSet<String> = (0..REQUESTS).map(|n| format!("r{n}")).collect();
    for name in runs.keys() {
        assert!(
            sent_names.contains(*name),
            "a handler ran for {name}, never sent"
        );
    }
}

/// A [`DedupStore`] that counts hits, around the durable one.
struct Counting {
    inner: FileDedup,
    hits: AtomicUsize,
}

impl DedupStore for Counting {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        let found = self.inner.get(key);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::SeqCst);
        }
        found
    }
    fn put(&self, key: &str, replies: &StoredReplies) {
        self.inner.put(key, replies)
    }
    fn claim(&self, key: &str, lease: Duration) -> Claim {
        let claim = self.inner.claim(key, lease);
        if matches!(claim, Claim::Done(_)) {
            self.hits.fetch_add(1, Ordering::SeqCst);
        }
        claim
    }
    fn release(&self, key: &str) {
        self.inner.release(key)
    }
}

/// Handles creates; the one named `block` waits until released (bounded), holding back the
/// commit of everything after it on its partition. Counts runs per request name (unique per
/// correlation id).
#[derive(Clone, Default)]
struct Blocking {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    release: Arc<AtomicBool>,
    finished: Arc<AtomicUsize>,
}

impl Handler for Blocking {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let name = axion_runtime::json::decode::<CreateProjectRequest>(&incoming.payload)
            .map(|r| r.name)
            .unwrap_or_default();
        *self.runs.lock().unwrap().entry(name).or_default() += 1;
        let me = self.clone();
        Box::pin(axion_runtime::futures::stream::once(async move {
            let request: CreateProjectRequest = axion_runtime::json::decode(&incoming.payload)?;
            if request.name == "block" {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !me.release.load(Ordering::SeqCst) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            me.finished.fetch_add(1, Ordering::SeqCst);
            if request.name.starts_with("fail") {
                return Err(RpcError::already_exists("stored errors are replayed too"));
            }
            axion_runtime::json::encode(&CreateProjectResponse {
                project: Some(Project {
                    name: request.name,
                    ..Default::default()
                }),
            })
            .map(Into::into)
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dedup_a_redelivered_request_runs_its_handler_once() {
    if std::env::var_os(SERVER_ENV).is_some() {
        return; // the other test's server process
    }
    const AFTER_BLOCK: usize = 10;
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("dedup.redb");
    let broker = Broker::start();
    // One partition, handled concurrently (the requests after `block` run while it hangs):
    // everything after `block` waits behind it for its commit. A short drain: the stop gives
    // up on `block` (cancelled, uncommitted) like a crash would.
    let config = KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("dedup")
        .fetch_wait_ms(5)
        .request_timeout_ms(2_000)
        .session_timeout_ms(6_000)
        .drain_timeout_ms(1_000)
        .topic_partitions(1)
        .max_in_flight_per_partition(16)
        .build()
        .unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let caller_config = KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("dedup-caller")
        .fetch_wait_ms(5)
        .request_timeout_ms(90_000)
        .build()
        .unwrap();
    let kafka = KafkaClient::connect(&caller_config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());

    let handler = Blocking::default();
    let first_store = Arc::new(FileDedup::open(&store_path).unwrap());
    let first = KafkaServer::start_with_dedup(&config, handler.clone(), first_store.clone())
        .await
        .unwrap();
    assert!(first.wait_assigned(Duration::from_secs(30)).await);

    let blocked = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .create_project(&CreateProjectRequest {
                    name: "block".into(),
                    ..Default::default()
                })
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while handler.runs.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 0..AFTER_BLOCK {
        let name = if n % 3 == 0 {
            format!("fail-{n}")
        } else {
            format!("ok-{n}")
        };
        let result = client
            .create_project(&CreateProjectRequest {
                name: name.clone(),
                ..Default::default()
            })
            .await;
        match result {
            Ok(reply) => assert_eq!(reply.project.unwrap().name, name),
            Err(e) => assert!(e.is(codes::ALREADY_EXISTS), "{name}: {e}"),
        }
    }
    // Stop: `block` is still running past the drain timeout, so it is cancelled and nothing
    // from it on is committed; the ten after it were answered and stored.
    first.shutdown().await;
    assert_eq!(handler.finished.load(Ordering::SeqCst), AFTER_BLOCK);
    handler.release.store(true, Ordering::SeqCst);
    // The old server's last task (`block`, abandoned by the stop) ends once released, and its
    // store closes with it: a file is open in one store at a time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&first_store) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        Arc::strong_count(&first_store),
        1,
        "the old server let go of its store"
    );
    drop(first_store);

    // A new server (a fresh store instance reading the same file, as after a restart) gets
    // every uncommitted request again: `block` runs again (it never finished), the ten are
    // answered from the store.
    let store = Arc::new(Counting {
        inner: FileDedup::open(&store_path).unwrap(),
        hits: AtomicUsize::new(0),
    });
    let second = KafkaServer::start_with_dedup(&config, handler.clone(), store.clone())
        .await
        .unwrap();
    assert!(second.wait_assigned(Duration::from_secs(60)).await);
    let block_reply = tokio::time::timeout(Duration::from_secs(60), blocked)
        .await
        .expect("block answered by the second server")
        .unwrap()
        .unwrap();
    assert_eq!(block_reply.project.unwrap().name, "block");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.hits.load(Ordering::SeqCst) < AFTER_BLOCK && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A new call still runs its handler.
    let fresh = client
        .create_project(&CreateProjectRequest {
            name: "fresh".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(fresh.project.unwrap().name, "fresh");
    second.shutdown().await;

    let runs = handler.runs.lock().unwrap().clone();
    let hits = store.hits.load(Ordering::SeqCst);
    eprintln!(
        "dedup: {} requests, handler runs {:?} in total, {hits} redeliveries answered from the store",
        runs.len(),
        runs.values().sum::<usize>()
    );
    assert_eq!(
        hits, AFTER_BLOCK,
        "the second server got exactly the ten answered-but-uncommitted requests again"
    );
    assert_eq!(runs.len(), AFTER_BLOCK + 2);
    assert_eq!(
        runs["block"], 2,
        "cancelled by the stop, run again by the next owner"
    );
    assert!(
        runs.iter()
            .filter(|(n, _)| *n != "block")
            .all(|(_, n)| *n == 1),
        "a stored request ran its handler again: {runs:?}"
    );
    // The replayed replies are on the wire, identical to the first ones.
    let replies = raw::read_all(
        &broker.address(),
        GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT,
        1,
        2 * AFTER_BLOCK + 2,
        Duration::from_secs(10),
    );
    // correlation id -> (payload, kafka_nest-err) of each reply
    type Reply = (Option<Vec<u8>>, Option<Vec<u8>>);
    let mut by_id: HashMap<Vec<u8>, Vec<Reply>> = HashMap::new();
    for m in &replies {
        let header = |key: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == key))
                .and_then(|h| h.value.map(<[u8]>::to_vec))
        };
        by_id
            .entry(header(CORRELATION_ID).unwrap_or_default())
            .or_default()
            .push((m.payload().map(<[u8]>::to_vec), header(NEST_ERR)));
    }
    let replayed: Vec<_> = by_id.values().filter(|r| r.len() == 2).collect();
    assert_eq!(
        replayed.len(),
        AFTER_BLOCK,
        "each stored request replied twice: {by_id:?}"
    );
    assert!(
        replayed.iter().all(|r| r[0] == r[1]),
        "replayed replies differ from the first ones"
    );
    assert_eq!(
        by_id.len(),
        AFTER_BLOCK + 2,
        "block and fresh replied once each"
    );
}

/// A rolling deploy: a second server process joins mid-load, then the first gets SIGTERM
/// (what Docker and Kubernetes send). The first drains (running handlers finish, their
/// offsets are committed, queued messages are left to the new owner) and exits by itself:
/// every call is answered and no request is handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_a_rolling_deploy_drains_without_duplicates() {
    if std::env::var_os(SERVER_ENV).is_some() {
        return; // the other test's server process
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let broker = Broker::start();
    let address = broker.address();
    ensure_topics(&cfg(&address, "setup"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let mut first = Killer(Some(spawn_server(&dir, &address, 1)));
    assert!(wait_for(&dir.join("ready-1"), Duration::from_secs(90)));
    let kafka = KafkaClient::connect(&cfg(&address, "rolling-caller"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let outcome = Arc::new(Outcome::default());
    let lanes = load(&client, &outcome);
    let answered = |outcome: &Outcome| outcome.answered_by.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered(&outcome) < REQUESTS / 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The new version joins the group while the old one serves.
    let _second = Killer(Some(spawn_server(&dir, &address, 2)));
    assert!(wait_for(&dir.join("ready-2"), Duration::from_secs(90)));
    while answered(&outcome) < REQUESTS / 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terminate(first.0.as_ref().unwrap());
    assert!(
        wait_for(&dir.join("stopped-1"), Duration::from_secs(30)),
        "SIGTERM did not stop the first server gracefully"
    );
    let status = first.0.take().unwrap().wait().unwrap();
    assert!(status.success(), "exited {status:?}");
    for lane in lanes {
        lane.await.unwrap();
    }
    let answered_by = outcome.answered_by.lock().unwrap().clone();
    let other = outcome.other.lock().unwrap().clone();
    let mut runs: HashMap<String, usize> = HashMap::new();
    for name in ran(&dir, 1).into_iter().chain(ran(&dir, 2)) {
        *runs.entry(name).or_default() += 1;
    }
    let duplicates: Vec<(&String, &usize)> = runs.iter().filter(|(_, n)| **n > 1).collect();
    let by = |g: &str| answered_by.values().filter(|v| *v == g).count();
    eprintln!(
        "rolling deploy with SIGTERM: sent {REQUESTS}, answered {} (old {}, new {}), errors {}, handler runs {}, duplicates {}",
        answered_by.len(),
        by("1"),
        by("2"),
        other.len(),
        runs.values().sum::<usize>(),
        duplicates.len()
    );
    assert!(other.is_empty(), "calls failed: {other:?}");
    assert_eq!(
        outcome.timed_out.load(Ordering::SeqCst),
        0,
        "calls timed out"
    );
    assert_eq!(answered_by.len(), REQUESTS, "every call answered");
    assert!(by("1") > 0 && by("2") > 0, "both versions served");
    assert!(
        duplicates.is_empty(),
        "handled twice in a graceful deploy: {duplicates:?}"
    );
    assert_eq!(runs.len(), REQUESTS);
}
