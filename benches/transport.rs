//! Transport benchmark on a real broker (tansu, in-memory, on 127.0.0.1), one run, same
//! settings for every pairing: sequential request/reply and 64 in flight, for the generated
//! Rust client → generated Rust server and NestJS ClientKafka → NestJS ServerKafka.
//!
//! `cargo bench --bench transport` (needs `bash scripts/setup.sh` first). Env: `BENCH_SEQ`
//! (default 300), `BENCH_PAR` (default 3000), `BENCH_FETCH_WAIT_MS` (default 1).

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;
#[path = "../tests/support/broker.rs"]
#[allow(dead_code)]
mod broker;
#[path = "../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;
#[path = "../tests/support/nest.rs"]
#[allow(dead_code)]
mod nest;

use std::time::{Duration, Instant};

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{CreateProjectRequest, GRAPH_SERVICE_CONTRACT};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    requests: usize,
    errors: usize,
    rps: f64,
    p50: f64,
    p99: f64,
}

fn stats(mut latencies: Vec<f64>, errors: usize, elapsed: Duration) -> Stats {
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[i.clamp(1, latencies.len()) - 1]
    };
    Stats {
        requests: latencies.len(),
        errors,
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(50.0),
        p99: pct(99.0),
    }
}

async fn rust_run(client: &GraphServiceClient, n: usize, in_flight: usize, tag: &str) -> Stats {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut lanes = Vec::new();
    for _ in 0..in_flight {
        let client = client.clone();
        let next = next.clone();
        let tag = tag.to_owned();
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let t0 = Instant::now();
                let r = client
                    .create_project(&CreateProjectRequest {
                        name: format!("{tag}-{i}"),
                        ..Default::default()
                    })
                    .await;
                if r.is_err() {
                    errors += 1;
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for lane in lanes {
        let (l, e) = lane.await.unwrap();
        all.extend(l);
        errors += e;
    }
    stats(all, errors, started.elapsed())
}

fn nest_run(address: &str, args: &[&str]) -> Stats {
    let (lines, status) = nest::run_client(address, args, "bench-caller", Duration::from_secs(600));
    let line = lines
        .iter()
        .find(|l| l.get("rps").is_some())
        .unwrap_or_else(|| {
            panic!("no result from NestJS client {args:?}: {lines:?} (status {status:?})")
        });
    Stats {
        requests: line["requests"].as_u64().unwrap_or(0) as usize,
        errors: line["errors"].as_u64().unwrap_or(0) as usize,
        rps: line["rps"].as_f64().unwrap_or(0.0),
        p50: line["p50_ms"].as_f64().unwrap_or(0.0),
        p99: line["p99_ms"].as_f64().unwrap_or(0.0),
    }
}

fn row(name: &str, seq: &Stats, par: &Stats) {
    println!(
        "| {name} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} | {} |",
        seq.rps,
        seq.p50,
        seq.p99,
        par.rps,
        par.p99,
        seq.errors + par.errors
    );
    let _ = (seq.requests, par.requests);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seq_n = env_usize("BENCH_SEQ", 300);
    let par_n = env_usize("BENCH_PAR", 3000);
    let fetch_wait = env_usize("BENCH_FETCH_WAIT_MS", 1);
    let b = broker::Broker::start();
    let config = KafkaConfig::builder()
        .brokers([b.address()])
        .client_id("bench")
        .fetch_wait_ms(fetch_wait as i64)
        .request_timeout_ms(30_000)
        .topic_partitions(3)
        .build()
        .unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();

    // Generated Rust client -> generated Rust server.
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let kafka = KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    rust_run(&client, 20, 1, "warm").await;
    let rust_seq = rust_run(&client, seq_n, 1, "seq").await;
    let rust_par = rust_run(&client, par_n, 64, "par").await;
    server.shutdown().await;

    // NestJS ClientKafka -> NestJS ServerKafka, same broker, same fetch wait.
    let address = b.address();
    std::env::set_var("FETCH_WAIT_MS", fetch_wait.to_string());
    let nest_server = nest::server(&address, "graph-service-nest");
    let nest_seq = nest_run(&address, &["bench-seq", &seq_n.to_string()]);
    let nest_par = nest_run(&address, &["bench-par", &par_n.to_string(), "64"]);
    drop(nest_server);

    println!();
    println!(
        "transport, tansu 0.6 in-memory, 3-partition topics, fetch wait {fetch_wait} ms, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| pairing | sequential req/s | p50 / p99 ms | 64 in flight req/s | p99 ms | errors |"
    );
    println!("|---|---|---|---|---|---|");
    row(
        "generated Rust client → generated Rust server",
        &rust_seq,
        &rust_par,
    );
    row(
        "NestJS ClientKafka → NestJS ServerKafka",
        &nest_seq,
        &nest_par,
    );
    println!(
        "ratio Rust/Nest: sequential {:.2}x, 64 in flight {:.2}x",
        rust_seq.rps / nest_seq.rps.max(f64::MIN_POSITIVE),
        rust_par.rps / nest_par.rps.max(f64::MIN_POSITIVE)
    );
}
