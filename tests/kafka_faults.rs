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
#[path = "../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
}

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::kafka::dedup::StoredReplies;
use axion_runtime::kafka::{
    ensure_topics, DedupStore, FileDedup, KafkaClient, KafkaConfig, KafkaServer,
};
use axion_runtime::{codes, Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, Project, GRAPH_SERVICE_CONTRACT,
};
use support::broker::Broker;

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
        }))
    }
}

/// Server mode: serve until killed (bounded), announcing readiness with a file.
async fn serve_in_this_process(dir: &Path) {
    let generation = std::env::var("AXION_FAULT_GENERATION").unwrap();
    let address = std::env::var("AXION_FAULT_BROKER").unwrap();
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
    tokio::time::sleep(Duration::from_secs(240)).await;
    server.shutdown().await;
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

fn wait_for(path: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

fn ran(dir: &Path, generation: u32) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("ran-{generation}")))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Kills the child if the test fails before it does.
struct Killer(Option<Child>);

impl Drop for Killer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Default)]
struct Outcome {
    /// Request name -> the process generation that answered it.
    answered_by: Mutex<BTreeMap<String, String>>,
    timed_out: AtomicUsize,
    other: Mutex<Vec<String>>,
    sent: AtomicUsize,
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
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        let client = client.clone();
        let outcome = outcome.clone();
        lanes.push(tokio::spawn(async move {
            for n in (lane..REQUESTS).step_by(LANES) {
                let name = format!("r{n}");
                outcome.sent.fetch_add(1, Ordering::SeqCst);
                let result = client
                    .create_project(&CreateProjectRequest {
                        name: name.clone(),
                        ..Default::default()
                    })
                    .await;
                match result {
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
        }));
    }

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
    let lost = sent.saturating_sub(answered + timed_out);

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
         second {answered_by_second}), timed out {timed_out}, lost {lost}, other errors {}, \
         handler runs {} + {}, duplicates {duplicates}",
        other.len(),
        ran_first.len(),
        ran_second.len()
    );
    assert!(other.is_empty(), "calls failed otherwise: {other:?}");
    assert_eq!(sent, REQUESTS);
    assert_eq!(lost, 0, "requests vanished");
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
    assert!(runs.len() <= sent);
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
}

/// Handles creates; the one named `block` waits until released (bounded), holding back the
/// commit of everything after it on its partition.
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
        let id = incoming.correlation_id.clone().unwrap_or_default();
        *self.runs.lock().unwrap().entry(id).or_default() += 1;
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
    let store_path = tmp.path().join("dedup.jsonl");
    let broker = Broker::start();
    // One partition: everything after `block` waits behind it for its commit.
    let config = KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("dedup")
        .fetch_wait_ms(5)
        .request_timeout_ms(2_000)
        .session_timeout_ms(6_000)
        .topic_partitions(1)
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
    let first = KafkaServer::start_with_dedup(
        &config,
        handler.clone(),
        Arc::new(FileDedup::open(&store_path).unwrap()),
    )
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
    // Stop: `block` is still running, so nothing after it is committed.
    first.shutdown().await;
    handler.release.store(true, Ordering::SeqCst);
    assert_eq!(
        blocked.await.unwrap().unwrap().project.unwrap().name,
        "block"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while handler.finished.load(Ordering::SeqCst) < AFTER_BLOCK + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A new server (a fresh store instance reading the same file, as after a restart) gets
    // every uncommitted request again.
    let store = Arc::new(Counting {
        inner: FileDedup::open(&store_path).unwrap(),
        hits: AtomicUsize::new(0),
    });
    let second = KafkaServer::start_with_dedup(&config, handler.clone(), store.clone())
        .await
        .unwrap();
    assert!(second.wait_assigned(Duration::from_secs(60)).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.hits.load(Ordering::SeqCst) < AFTER_BLOCK + 1 && Instant::now() < deadline {
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
    assert!(
        hits > AFTER_BLOCK,
        "the second server got the uncommitted requests again ({hits} store hits)"
    );
    assert_eq!(runs.len(), AFTER_BLOCK + 2);
    assert!(
        runs.values().all(|n| *n == 1),
        "a handler ran twice for one correlation id: {runs:?}"
    );
}
