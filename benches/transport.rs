//! Transport benchmark on a real broker (tansu, in-memory, on 127.0.0.1), with the same
//! settings for every pairing, repeated `BENCH_ROUNDS` times (a fresh broker per round; every
//! pairing of a round runs on it):
//! - request/reply, sequential and 64 in flight: generated Rust client → generated Rust server,
//!   NestJS ClientKafka → NestJS ServerKafka, and a raw rdkafka client → raw rdkafka echo
//!   server (the limit), then the same raw client → the echo in the runtime's shape (a
//!   consumer thread, a task per request that waits for its reply's acknowledgement): what
//!   that shape costs, apart from the runtime's code;
//! - events per second: the generated client's emit vs a raw rdkafka producer;
//! - peak RSS and CPU per request of the generated server vs the NestJS server (each server
//!   runs in its own process; read from /proc);
//! - the generated pair again with telemetry off (`axion_runtime::telemetry`: no trace
//!   propagation, no metrics; the request context stays): what they cost;
//! - with the server exactly-once (`KafkaConfig::transactional_id`: a transaction per
//!   request, one at a time), `BENCH_EOS` requests from 64 callers;
//! - and over SCRAM-SHA-512 + TLS (a second broker with `--authentication` and a test CA's
//!   certificate), 64 in flight: what a production security setup costs.
//!
//! `cargo bench --bench transport` (needs `bash scripts/setup.sh` first); `scripts/bench.sh`
//! runs it with the codegen and build benchmarks. Env: `BENCH_ROUNDS` (3), `BENCH_SEQ` (300),
//! `BENCH_PAR` (3000), `BENCH_EVENTS` (20000), `BENCH_EOS` (300), `BENCH_FETCH_WAIT_MS` (1), `BENCH_JSON` (a
//! path: also write every figure there as JSON), `BENCH_SERVER_WRAPPER` (a profiler command
//! the Rust servers run under, e.g. `heaptrack -o /tmp/{mode}`).

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;
#[path = "transport/alloc.rs"]
mod alloc;
#[path = "../runtime/tests/support/broker.rs"]
#[allow(dead_code)]
mod broker;
#[path = "../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;
#[path = "transport/procs.rs"]
mod procs;
#[path = "transport/raw.rs"]
mod raw;
#[path = "transport/stats.rs"]
mod stats;
#[path = "../runtime/tests/support/tls.rs"]
#[allow(dead_code)]
mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, Project, ProjectCreatedEvent, GRAPH_SERVICE_CONTRACT,
    GRAPH_SERVICE_PATTERNS,
};
use stats::{Round, Run, Summary};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Events in flight at once, for both producers.
const EVENT_WINDOW: usize = 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The secure broker's user (SCRAM-SHA-512) and password.
const SECURE_USER: &str = "bench";
const SECURE_PASSWORD: &str = "bench-scram-password";
/// The environment variable that tells a secure server process where the CA is.
const SECURE_CA_ENV: &str = "BENCH_SECURE_CA";

/// [`config`] over SCRAM-SHA-512 and TLS trusting `ca`.
fn secure_config(broker: &str, fetch_wait: usize, group: Option<&str>, ca: &str) -> KafkaConfig {
    let mut cfg = config(broker, fetch_wait, group);
    cfg.sasl = Some(axion_runtime::kafka::Sasl {
        mechanism: axion_runtime::kafka::SaslMechanism::ScramSha512,
        username: SECURE_USER.to_owned(),
        password: axion_runtime::kafka::Secret::new(SECURE_PASSWORD),
    });
    cfg.ssl = true;
    cfg.ssl_ca_location = Some(ca.into());
    cfg
}

fn config(broker: &str, fetch_wait: usize, group: Option<&str>) -> KafkaConfig {
    let mut b = KafkaConfig::builder()
        .brokers([broker])
        .client_id("bench")
        .fetch_wait_ms(fetch_wait as i64)
        .request_timeout_ms(TIMEOUT.as_millis() as i64)
        .topic_partitions(3)
        // Like the raw echo server, no per-partition order: 64 in flight over 3 partitions
        // (the default, 1, keeps each partition in order).
        .max_in_flight_per_partition(64);
    if let Some(g) = group {
        b = b.server_group(g);
    }
    b.build().unwrap()
}

/// Runs `n` calls of `call` over `in_flight` lanes; latency per call.
async fn lanes<F, Fut>(n: usize, in_flight: usize, call: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let next = next.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t0 = Instant::now();
                if !call(i).await {
                    errors += 1;
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    Run::new(all, errors, started.elapsed())
}

fn request(tag: &str, i: usize) -> CreateProjectRequest {
    CreateProjectRequest {
        name: format!("{tag}-{i}"),
        ..Default::default()
    }
}

async fn round(
    r: usize,
    seq: usize,
    par: usize,
    events: usize,
    eos: usize,
    fetch_wait: usize,
) -> Round {
    let b = broker::Broker::start();
    let address = b.address();
    let cfg = config(&address, fetch_wait, None);
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    raw::create_topics(&address).await;

    // Generated client -> generated server (own process). First on the fresh broker: the
    // server group starts from the earliest offset.
    let mut server =
        procs::self_server("serve-generated", &address, fetch_wait, &format!("gen{r}"));
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let call = {
        let client = client.clone();
        move |tag: &'static str| {
            let client = client.clone();
            move |i: usize| {
                let client = client.clone();
                async move { client.create_project(&request(tag, i)).await.is_ok() }
            }
        }
    };
    lanes(20, 1, call("warm")).await;
    let gen_seq = lanes(seq, 1, call("seq")).await;
    let (cpu0, me0) = (server.cpu_seconds(), procs::self_cpu_seconds());
    let (sa0, ca0) = (server.allocations().unwrap_or(0), alloc::count());
    let gen_par = lanes(par, 64, call("par")).await;
    let gen_client_allocs = (alloc::count() - ca0) as f64 / par as f64;
    let gen_server_allocs = (server.allocations().unwrap_or(0) - sa0) as f64 / par as f64;
    let gen_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / par as f64;
    let gen_client_cpu = (procs::self_cpu_seconds() - me0) * 1000.0 / par as f64;
    let gen_server = (server.peak_rss_mb(), gen_cpu);
    drop(server);

    // The same pair with telemetry off on both sides (a fresh server process; the client's
    // switch is process-wide): what trace propagation and metrics cost.
    let mut server = procs::self_server(
        "serve-generated-plain",
        &address,
        fetch_wait,
        &format!("plain{r}"),
    );
    axion_runtime::telemetry::set_enabled(false);
    lanes(20, 1, call("plain-warm")).await;
    let cpu0 = server.cpu_seconds();
    let sa0 = server.allocations().unwrap_or(0);
    let plain_par = lanes(par, 64, call("plain")).await;
    let plain_allocs = (server.allocations().unwrap_or(0) - sa0) as f64 / par as f64;
    let plain_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / par as f64;
    axion_runtime::telemetry::set_enabled(true);
    drop(server);

    // The generated pair with an exactly-once server: a transaction per request.
    let server = procs::self_server(
        "serve-generated-eos",
        &address,
        fetch_wait,
        &format!("eos{r}"),
    );
    lanes(20, 1, call("eos-warm")).await;
    let cpu0 = server.cpu_seconds();
    let eos_par = lanes(eos, 64, call("eos")).await;
    let eos_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / eos as f64;
    drop(server);

    // The generated pair over SCRAM-SHA-512 + TLS, on a broker of its own that requires both.
    let secure = {
        let pki = tls::TestPki::new();
        let user = format!("{SECURE_USER}:{SECURE_PASSWORD}");
        let sb = broker::Broker::start_with(&broker::Options {
            users: &[&user],
            tls: Some((&pki.cert, &pki.key)),
        });
        let ca = pki.ca.display().to_string();
        let scfg = secure_config(&sb.address(), fetch_wait, None, &ca);
        ensure_topics(&scfg, &[&GRAPH_SERVICE_CONTRACT])
            .await
            .unwrap();
        let server = procs::self_server_with(
            "serve-generated-secure",
            &sb.address(),
            fetch_wait,
            &format!("secure{r}"),
            &[(SECURE_CA_ENV, &ca)],
        );
        let kafka = KafkaClient::connect(&scfg, &[&GRAPH_SERVICE_CONTRACT])
            .await
            .unwrap();
        let client = GraphServiceClient::new(kafka.client());
        let call = move |tag: &'static str| {
            let client = client.clone();
            move |i: usize| {
                let client = client.clone();
                async move { client.create_project(&request(tag, i)).await.is_ok() }
            }
        };
        lanes(20, 1, call("secure-warm")).await;
        let cpu0 = server.cpu_seconds();
        let run = lanes(par, 64, call("secure")).await;
        let cpu = (server.cpu_seconds() - cpu0) * 1000.0 / par as f64;
        (run, cpu)
    };

    // Events: the generated client's emit vs a raw producer, same payload and window.
    let event = ProjectCreatedEvent {
        project: Some(Project {
            id: "p-0001".into(),
            name: "bench project".into(),
            ..Default::default()
        }),
    };
    let gen_events = {
        client.project_created(&event).await.unwrap();
        let client = client.clone();
        let event = event.clone();
        lanes(events, EVENT_WINDOW, move |_| {
            let client = client.clone();
            let event = event.clone();
            async move { client.project_created(&event).await.is_ok() }
        })
        .await
    };
    drop(client);
    drop(kafka);
    let raw_events = {
        let producer = raw::event_producer(&address);
        let payload = Arc::new(serde_json::to_vec(&event).unwrap());
        // Warm up like the generated client (connected, producer id assigned).
        let warm =
            rdkafka::producer::FutureRecord::<(), _>::to(GRAPH_SERVICE_PATTERNS::PROJECT_CREATED)
                .payload(payload.as_slice());
        producer.send(warm, TIMEOUT).await.unwrap();
        lanes(events, EVENT_WINDOW, move |_| {
            let producer = producer.clone();
            let payload = payload.clone();
            async move {
                let record = rdkafka::producer::FutureRecord::<(), _>::to(
                    GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
                )
                .payload(payload.as_slice());
                producer.send(record, TIMEOUT).await.is_ok()
            }
        })
        .await
    };

    // Raw client -> raw echo server (own process, own topics): the limit.
    let mut server = procs::self_server("serve-raw", &address, fetch_wait, &format!("raw{r}"));
    let rawc = raw::RawClient::connect(&address, fetch_wait).await;
    let payload = Arc::new(serde_json::to_vec(&request("raw", 0)).unwrap());
    let raw_call = |rawc: raw::RawClient, payload: Arc<Vec<u8>>| {
        move |_: usize| {
            let rawc = rawc.clone();
            let payload = payload.clone();
            async move { rawc.call(&payload, TIMEOUT).await.is_ok() }
        }
    };
    lanes(20, 1, raw_call(rawc.clone(), payload.clone())).await;
    let raw_seq = lanes(seq, 1, raw_call(rawc.clone(), payload.clone())).await;
    let (cpu0, me0) = (server.cpu_seconds(), procs::self_cpu_seconds());
    let (sa0, ca0) = (server.allocations().unwrap_or(0), alloc::count());
    let raw_par = lanes(par, 64, raw_call(rawc.clone(), payload.clone())).await;
    let raw_client_allocs = (alloc::count() - ca0) as f64 / par as f64;
    let raw_server_allocs = (server.allocations().unwrap_or(0) - sa0) as f64 / par as f64;
    let raw_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / par as f64;
    let raw_client_cpu = (procs::self_cpu_seconds() - me0) * 1000.0 / par as f64;
    let raw_server = (server.peak_rss_mb(), raw_cpu);
    drop(server);

    // The same raw pair, the echo in the runtime's shape (a consumer thread, a task per
    // request that waits for its reply's acknowledgement): what that shape costs.
    let server = procs::self_server(
        "serve-raw-acked",
        &address,
        fetch_wait,
        &format!("raw-acked{r}"),
    );
    lanes(20, 1, raw_call(rawc.clone(), payload.clone())).await;
    let cpu0 = server.cpu_seconds();
    let acked_par = lanes(par, 64, raw_call(rawc.clone(), payload.clone())).await;
    let acked_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / par as f64;
    drop(rawc);
    drop(server);

    // NestJS ClientKafka -> NestJS ServerKafka (own processes), same broker and fetch wait.
    let server = procs::nest_server(&address, fetch_wait, &format!("nest{r}"));
    let nest_seq = stats::nest_client(&address, fetch_wait, &["bench-seq", &seq.to_string()]);
    let cpu0 = server.cpu_seconds();
    let nest_par = stats::nest_client(&address, fetch_wait, &["bench-par", &par.to_string(), "64"]);
    let nest_cpu = (server.cpu_seconds() - cpu0) * 1000.0 / nest_par.requests.max(1) as f64;
    let nest_server = (server.peak_rss_mb(), nest_cpu);
    drop(server);
    drop(b);

    Round {
        generated: [gen_seq, gen_par],
        nest: [nest_seq, nest_par],
        raw: [raw_seq, raw_par],
        server: [gen_server, nest_server, raw_server],
        client_cpu: [gen_client_cpu, raw_client_cpu],
        allocs: [
            gen_client_allocs,
            gen_server_allocs,
            raw_client_allocs,
            raw_server_allocs,
        ],
        events: [gen_events.rps, raw_events.rps],
        plain: (plain_par, plain_cpu, plain_allocs),
        exactly_once: (eos_par, eos_cpu),
        secure,
        raw_acked: (acked_par, acked_cpu),
    }
}

/// `serve-generated BROKER FETCH_WAIT GROUP`: the generated server until killed (exactly-once
/// with a transactional id).
async fn serve_generated(broker: &str, fetch_wait: usize, group: &str, transactional: bool) {
    let mut cfg = match std::env::var(SECURE_CA_ENV) {
        Ok(ca) => secure_config(broker, fetch_wait, Some(group), &ca),
        Err(_) => config(broker, fetch_wait, Some(group)),
    };
    if transactional {
        cfg.transactional_id = Some(format!("bench-{group}"));
    }
    let server = KafkaServer::start(&cfg, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(60)).await);
    alloc::answer_on_stdin();
    println!("ready");
    std::future::pending::<()>().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("serve-generated") => {
            return serve_generated(&args[1], args[2].parse().unwrap(), &args[3], false).await
        }
        Some("serve-generated-plain") => {
            axion_runtime::telemetry::set_enabled(false);
            return serve_generated(&args[1], args[2].parse().unwrap(), &args[3], false).await;
        }
        Some("serve-generated-secure") => {
            return serve_generated(&args[1], args[2].parse().unwrap(), &args[3], false).await
        }
        Some("serve-generated-eos") => {
            return serve_generated(&args[1], args[2].parse().unwrap(), &args[3], true).await
        }
        Some("serve-raw-acked") => {
            raw::serve_acked(&args[1], args[2].parse().unwrap(), &args[3]).await;
            alloc::answer_on_stdin();
            println!("ready");
            return std::future::pending::<()>().await;
        }
        Some("serve-raw") => {
            raw::serve(&args[1], args[2].parse().unwrap(), &args[3]).await;
            alloc::answer_on_stdin();
            println!("ready");
            return std::future::pending::<()>().await;
        }
        _ => {}
    }
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let seq = env_usize("BENCH_SEQ", 300);
    let par = env_usize("BENCH_PAR", 3000);
    let events = env_usize("BENCH_EVENTS", 20000);
    let eos = env_usize("BENCH_EOS", 300).max(1);
    let fetch_wait = env_usize("BENCH_FETCH_WAIT_MS", 1);
    let mut all = Vec::new();
    for r in 0..rounds {
        let t0 = Instant::now();
        all.push(round(r, seq, par, events, eos, fetch_wait).await);
        eprintln!(
            "[transport] round {}/{rounds} done in {:.0?}",
            r + 1,
            t0.elapsed()
        );
    }
    let summary = Summary::new(&all, seq, par, events, fetch_wait);
    summary.print();
    if let Ok(path) = std::env::var("BENCH_JSON") {
        std::fs::write(&path, summary.json()).unwrap();
        eprintln!("[transport] wrote {path}");
    }
}
