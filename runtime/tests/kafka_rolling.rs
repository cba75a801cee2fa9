//! A rolling deploy under load, on a real broker: Rust server processes serve a NestJS client
//! and a Rust client (requests and server streams). A serves alone, B joins; A is stopped with
//! SIGTERM and started again; then B is killed with SIGKILL and started again 2 s later,
//! before the broker has expired the dead member (the case that left partitions owned by
//! nobody on an unpatched tansu 0.6: `vendor/tansu/AXION-PATCH.md`).
//!
//! Checked: every call of both clients is answered; a request runs twice only when the killed
//! process had run it (its in-flight work); a server stream is never answered by two owners
//! at once: items of one owner never interleave with another's, and only the killed process
//! leaves a stream unfinished.
//!
//! The server processes are this test binary itself, re-run with `AXION_ROLLING_SERVER` set.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod nest;
    pub mod procs;
}

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use axion_runtime::{Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, ListProjectsRequest, Project,
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use support::broker::Broker;
use support::nest;
use support::procs::{terminate, wait_for, Killer, LogsOnFailure};

const SERVER_ENV: &str = "AXION_ROLLING_SERVER";
/// Rust create-project calls, from `LANES` concurrent callers.
const RUST_REQUESTS: usize = 240;
const LANES: usize = 6;
/// NestJS create-project calls, `NEST_CONCURRENCY` in flight.
const NEST_REQUESTS: usize = 160;
const NEST_CONCURRENCY: usize = 4;
/// Server streams, one after another from each of `STREAM_LANES` callers.
const STREAMS: usize = 40;
const STREAM_LANES: usize = 2;
/// Items per stream, `ITEM_GAP` apart: a stream is in flight for ~200 ms.
const ITEMS: usize = 5;
const ITEM_GAP: Duration = Duration::from_millis(40);
const HANDLER_DELAY: Duration = Duration::from_millis(30);
/// Process generations: A, B, then A restarted after SIGTERM, B restarted after SIGKILL.
const A: u32 = 1;
const B: u32 = 2;
const A2: u32 = 3;
const B2: u32 = 4;

fn cfg(address: &str, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([address.to_owned()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        // Long enough to wait through a restart; a request nobody ever handles still fails.
        .request_timeout_ms(60_000)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

/// Records every handler run (`c <name>` for a create, `s <correlation id>` for a stream)
/// before working; answers with its process generation.
struct Recording {
    generation: String,
    ran: Mutex<std::fs::File>,
}

impl Recording {
    /// `what`, then where it was read from (shown when a test fails).
    fn record(&self, what: &str, incoming: &Incoming) {
        let (p, o) = (
            incoming.partition.unwrap_or(-1),
            incoming.offset.unwrap_or(-1),
        );
        let mut ran = self.ran.lock().unwrap();
        ran.write_all(format!("{what}\t{}/{p}@{o}\n", incoming.pattern).as_bytes())
            .unwrap();
    }
}

impl Handler for Recording {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let generation = self.generation.clone();
        if &*incoming.pattern == GRAPH_SERVICE_PATTERNS::LIST_PROJECTS {
            let id = incoming.correlation_id.clone().unwrap_or_default();
            self.record(&format!("s {id}"), &incoming);
            return axion_runtime::futures::stream::iter(0..ITEMS)
                .then(move |i| {
                    let name = format!("{generation}:{i}");
                    async move {
                        tokio::time::sleep(ITEM_GAP).await;
                        axion_runtime::json::encode(&Project {
                            name,
                            ..Default::default()
                        })
                        .map(Into::into)
                    }
                })
                .boxed();
        }
        let request = axion_runtime::json::decode::<CreateProjectRequest>(&incoming.payload);
        if let Ok(r) = &request {
            self.record(&format!("c {}", r.name), &incoming);
        }
        Box::pin(axion_runtime::futures::stream::once(async move {
            tokio::time::sleep(HANDLER_DELAY).await;
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

/// Server mode: serve until SIGTERM (or killed; bounded), announcing readiness with a file.
async fn serve_in_this_process(dir: &Path) {
    let generation = std::env::var("AXION_ROLLING_GENERATION").unwrap();
    let address = std::env::var("AXION_ROLLING_BROKER").unwrap();
    // The runtime's own account (rebalances, commits, warnings), shown if the test fails.
    let log = std::fs::File::create(dir.join(format!("log-{generation}"))).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter("axion_runtime=info")
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
    };
    let server = KafkaServer::start(&cfg(&address, "rolling-server"), handler)
        .await
        .unwrap();
    if server.wait_assigned(Duration::from_secs(60)).await {
        std::fs::write(dir.join(format!("ready-{generation}")), b"").unwrap();
    }
    tokio::select! {
        _ = axion_runtime::shutdown_signal() => {}
        _ = tokio::time::sleep(Duration::from_secs(300)) => {}
    }
    server.shutdown().await;
    std::fs::write(dir.join(format!("stopped-{generation}")), b"").unwrap();
}

fn spawn_server(dir: &Path, address: &str, generation: u32) -> Killer {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rolling_deploy_with_sigterm_and_sigkill_answers_every_call",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVER_ENV, dir)
        .env("AXION_ROLLING_GENERATION", generation.to_string())
        .env("AXION_ROLLING_BROKER", address)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Killer(Some(child))
}

/// Handler runs: key (`c <name>` / `s <correlation id>`) -> generations that ran it.
fn runs(dir: &Path) -> BTreeMap<String, Vec<u32>> {
    let mut runs: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for generation in [A, B, A2, B2] {
        let text = std::fs::read_to_string(dir.join(format!("ran-{generation}")));
        for line in text.unwrap_or_default().lines().filter(|l| !l.is_empty()) {
            let key = line.split('\t').next().unwrap_or(line);
            runs.entry(key.to_owned()).or_default().push(generation);
        }
    }
    runs
}

/// Where each run of `key` read its record: `generation topic/partition@offset`.
fn places(dir: &Path, key: &str) -> String {
    let mut places = Vec::new();
    for generation in [A, B, A2, B2] {
        let text = std::fs::read_to_string(dir.join(format!("ran-{generation}")));
        for line in text.unwrap_or_default().lines() {
            if let Some((k, place)) = line.split_once('\t') {
                if k == key {
                    places.push(format!("{generation} {place}"));
                }
            }
        }
    }
    places.join(", ")
}

#[derive(Default)]
struct Outcome {
    /// Request name -> the generation that answered it.
    answered_by: Mutex<BTreeMap<String, String>>,
    /// Each stream's item names (`<generation>:<index>`), in arrival order.
    streams: Mutex<Vec<Vec<String>>>,
    errors: Mutex<Vec<String>>,
    done: AtomicUsize,
    /// Rust calls numbered below this may start: the load runs at most `AHEAD` ahead of the
    /// step being waited for, so every step of the deploy happens under load.
    allowed: AtomicUsize,
}

/// How far (share of the Rust calls, in %) the load may run ahead of a deploy step.
const AHEAD: usize = 10;

fn rust_load(
    client: &GraphServiceClient,
    outcome: &Arc<Outcome>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let creates = (0..LANES).map(|lane| {
        let (client, outcome) = (client.clone(), outcome.clone());
        tokio::spawn(async move {
            for n in (lane..RUST_REQUESTS).step_by(LANES) {
                let gate = Instant::now() + Duration::from_secs(120);
                while n >= outcome.allowed.load(Ordering::SeqCst) && Instant::now() < gate {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let name = format!("r{n}");
                let request = CreateProjectRequest {
                    name: name.clone(),
                    ..Default::default()
                };
                match client.create_project(&request).await {
                    Ok(reply) => {
                        let project = reply.project.unwrap_or_default();
                        assert_eq!(project.name, name, "a reply to another request");
                        let mut answered = outcome.answered_by.lock().unwrap();
                        answered.insert(name, project.description);
                    }
                    Err(e) => outcome.errors.lock().unwrap().push(format!("{name}: {e}")),
                }
                outcome.done.fetch_add(1, Ordering::SeqCst);
            }
        })
    });
    let streams = (0..STREAM_LANES).map(|_| {
        let (client, outcome) = (client.clone(), outcome.clone());
        tokio::spawn(async move {
            for _ in 0..STREAMS / STREAM_LANES {
                let items: Result<Vec<String>, RpcError> =
                    match client.list_projects(&ListProjectsRequest::default()).await {
                        Ok(stream) => stream
                            .map(|item| item.map(|p| p.name))
                            .collect::<Vec<_>>()
                            .await
                            .into_iter()
                            .collect(),
                        Err(e) => Err(e),
                    };
                match items {
                    Ok(items) => outcome.streams.lock().unwrap().push(items),
                    Err(e) => outcome.errors.lock().unwrap().push(format!("stream: {e}")),
                }
            }
        })
    });
    creates.chain(streams).collect()
}

/// Splits a stream's items into runs of one owner each: `(generation, indexes)`.
fn owners(items: &[String]) -> Vec<(u32, Vec<usize>)> {
    let mut runs: Vec<(u32, Vec<usize>)> = Vec::new();
    for item in items {
        let (generation, index) = item.split_once(':').expect("item names are <gen>:<i>");
        let (generation, index): (u32, usize) =
            (generation.parse().unwrap(), index.parse().unwrap());
        match runs.last_mut() {
            Some((g, indexes)) if *g == generation => indexes.push(index),
            _ => runs.push((generation, vec![index])),
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_deploy_with_sigterm_and_sigkill_answers_every_call() {
    if let Some(dir) = std::env::var_os(SERVER_ENV) {
        return serve_in_this_process(Path::new(&dir)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let _logs = LogsOnFailure {
        dir: &dir,
        generations: &[A, B, A2, B2],
    };
    let broker = Broker::start();
    let address = broker.address();
    ensure_topics(&cfg(&address, "setup"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();

    let mut a = spawn_server(&dir, &address, A);
    assert!(wait_for(
        &dir.join(format!("ready-{A}")),
        Duration::from_secs(90)
    ));

    let kafka = KafkaClient::connect(&cfg(&address, "rolling-rust"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let outcome = Arc::new(Outcome::default());
    let nest_address = address.clone();
    let nest_load = std::thread::spawn(move || {
        nest::run_client(
            &nest_address,
            &[
                "load",
                &NEST_REQUESTS.to_string(),
                &NEST_CONCURRENCY.to_string(),
                "n",
            ],
            "rolling-nest",
            Duration::from_secs(400),
        )
    });
    let lanes = rust_load(&client, &outcome);
    // Waits until `share` % of the Rust calls are done, letting the load run `AHEAD` % further.
    let progress = |share: usize| {
        let outcome = outcome.clone();
        outcome.allowed.store(
            RUST_REQUESTS * (share + AHEAD).min(100) / 100,
            Ordering::SeqCst,
        );
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while outcome.done.load(Ordering::SeqCst) < RUST_REQUESTS * share / 100
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // B joins while A serves: the partitions that move are drained by A first.
    progress(10).await;
    let mut b = spawn_server(&dir, &address, B);
    assert!(wait_for(
        &dir.join(format!("ready-{B}")),
        Duration::from_secs(90)
    ));

    // A new version of A: SIGTERM, a graceful drain, then the new process.
    progress(30).await;
    terminate(a.0.as_ref().unwrap());
    assert!(
        wait_for(&dir.join(format!("stopped-{A}")), Duration::from_secs(30)),
        "SIGTERM did not stop A gracefully"
    );
    assert!(a.0.take().unwrap().wait().unwrap().success());
    let _a2 = spawn_server(&dir, &address, A2);
    assert!(wait_for(
        &dir.join(format!("ready-{A2}")),
        Duration::from_secs(90)
    ));

    // B crashes and comes back 2 s later, long before its 6 s session expires.
    progress(60).await;
    let mut child = b.0.take().unwrap();
    child.kill().unwrap(); // SIGKILL: no commit, no leave
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _b2 = spawn_server(&dir, &address, B2);
    // The calls sent meanwhile (up to `AHEAD` % past the kill) wait for B's partitions to be
    // owned again; the rest go out once B' owns some, so that it has work to serve.
    assert!(
        wait_for(&dir.join(format!("ready-{B2}")), Duration::from_secs(90)),
        "B restarted after SIGKILL got no partitions"
    );
    outcome.allowed.store(RUST_REQUESTS, Ordering::SeqCst);

    for lane in lanes {
        lane.await.unwrap();
    }
    let (nest_lines, nest_status) = nest_load.join().unwrap();
    let runs = runs(&dir);
    let answered_by = outcome.answered_by.lock().unwrap().clone();
    let streams = outcome.streams.lock().unwrap().clone();
    let errors = outcome.errors.lock().unwrap().clone();

    let nest_answered: BTreeMap<String, String> = nest_lines
        .iter()
        .filter(|l| l["ok"] == true)
        .map(|l| {
            let name = l["name"].as_str().unwrap().to_owned();
            (name, l["description"].as_str().unwrap().to_owned())
        })
        .collect();
    let nest_failed: Vec<&serde_json::Value> =
        nest_lines.iter().filter(|l| l["ok"] == false).collect();
    let duplicates: BTreeMap<&String, &Vec<u32>> =
        runs.iter().filter(|(_, gens)| gens.len() > 1).collect();
    let by = |g: u32| {
        let g = g.to_string();
        answered_by
            .values()
            .chain(nest_answered.values())
            .filter(|v| **v == g)
            .count()
    };
    let mut stream_owners: BTreeMap<u32, usize> = BTreeMap::new();
    for items in &streams {
        for (generation, _) in owners(items) {
            *stream_owners.entry(generation).or_default() += 1;
        }
    }
    eprintln!("rolling deploy: streams answered by (generation: count) {stream_owners:?}");
    eprintln!(
        "rolling deploy: rust {}/{RUST_REQUESTS} answered, nest {}/{NEST_REQUESTS}, streams {}/{STREAMS}, \
         errors {} + {}; answered by A {} B {} A' {} B' {}; handler runs {}, run twice {}: {duplicates:?}",
        answered_by.len(),
        nest_answered.len(),
        streams.len(),
        errors.len(),
        nest_failed.len(),
        by(A),
        by(B),
        by(A2),
        by(B2),
        runs.values().map(Vec::len).sum::<usize>(),
        duplicates.len(),
    );
    // Where each failed call's request ran (`r<n>: …` is the create `c r<n>`), if anywhere.
    let ran_where: Vec<String> = errors
        .iter()
        .filter_map(|e| e.split_once(':'))
        .map(|(name, _)| format!("{name} ran at [{}]", places(&dir, &format!("c {name}"))))
        .collect();
    assert!(
        errors.is_empty(),
        "Rust calls failed: {errors:?}; {ran_where:?}"
    );
    assert!(
        nest_failed.is_empty(),
        "NestJS calls failed: {nest_failed:?}"
    );
    assert_eq!(nest_status, Some(0), "the NestJS client failed");
    assert_eq!(answered_by.len(), RUST_REQUESTS, "every Rust call answered");
    assert_eq!(
        nest_answered.len(),
        NEST_REQUESTS,
        "every NestJS call answered"
    );
    assert_eq!(streams.len(), STREAMS, "every stream answered");
    // Which partitions a process gets is the assignor's choice: it may serve only streams.
    let served = |g: u32| by(g) + stream_owners.get(&g).copied().unwrap_or(0);
    assert!(
        served(A) > 0 && served(B) > 0,
        "both first processes served"
    );
    assert!(
        served(A2) > 0 && served(B2) > 0,
        "both restarted processes served"
    );

    // Each request and stream ran at least once; twice only where the killed B had run it.
    let sent: BTreeSet<String> = (0..RUST_REQUESTS)
        .map(|n| format!("c r{n}"))
        .chain((0..NEST_REQUESTS).map(|n| format!("c n{n}")))
        .collect();
    for key in &sent {
        assert!(
            runs.contains_key(key),
            "{key} answered without a handler run"
        );
    }
    let creates: BTreeSet<&String> = runs.keys().filter(|k| k.starts_with("c ")).collect();
    assert_eq!(
        creates.len(),
        sent.len(),
        "a handler ran for a request never sent"
    );
    for (key, gens) in &duplicates {
        assert!(
            gens.contains(&B) && gens.iter().filter(|g| **g == B).count() == 1,
            "{key} ran more than once, and not as in-flight work of the killed process: {gens:?} ({})",
            places(&dir, key)
        );
    }
    assert_eq!(
        runs.keys().filter(|k| k.starts_with("s ")).count(),
        STREAMS,
        "one correlation id per stream"
    );

    // No stream interleaves two owners; only the killed B leaves a stream unfinished, and the
    // owner that answers last answers it completely and in order.
    let complete: Vec<usize> = (0..ITEMS).collect();
    for items in &streams {
        let owners = owners(items);
        let (last, indexes) = owners.last().expect("a stream with no items");
        assert_eq!(
            indexes, &complete,
            "stream {items:?} incomplete from {last}"
        );
        let mut seen = BTreeSet::new();
        for (generation, indexes) in &owners {
            assert!(seen.insert(*generation), "owners interleave in {items:?}");
            let prefix: Vec<usize> = (0..indexes.len()).collect();
            assert_eq!(indexes, &prefix, "out of order in {items:?}");
        }
        for (generation, _) in &owners[..owners.len() - 1] {
            assert_eq!(
                *generation, B,
                "{generation} left stream {items:?} unfinished"
            );
        }
    }
}
