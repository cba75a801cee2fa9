//! Figures: per-run statistics, the NestJS client's results, and the summary over rounds
//! (median with min–max; ratios of the medians, and some taken per round, then their median).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One measured run of request/reply calls.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub requests: usize,
    pub errors: usize,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
}

impl Run {
    pub fn new(mut latencies: Vec<f64>, errors: usize, elapsed: Duration) -> Run {
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
            latencies[i.clamp(1, latencies.len()) - 1]
        };
        Run {
            requests: latencies.len(),
            errors,
            rps: latencies.len().saturating_sub(errors) as f64 / elapsed.as_secs_f64(),
            p50: pct(50.0),
            p99: pct(99.0),
        }
    }
}

/// Every figure of one round.
pub struct Round {
    /// Sequential, 64 in flight.
    pub generated: [Run; 2],
    pub nest: [Run; 2],
    pub raw: [Run; 2],
    /// Server peak RSS MB and CPU ms per request (64-in-flight phase): generated, NestJS, raw.
    pub server: [(f64, f64); 3],
    /// CPU ms per request of the client process (64 in flight): generated, raw.
    pub client_cpu: [f64; 2],
    /// Rust allocations per request (64 in flight): generated client, generated server, raw
    /// client, raw server.
    pub allocs: [f64; 4],
    /// Events per second: generated emit, raw producer.
    pub events: [f64; 2],
    /// The generated pair with telemetry off (no trace propagation, no metrics), 64 in flight:
    /// the run, server CPU ms per request, server allocations per request.
    pub plain: (Run, f64, f64),
    /// The generated pair with the server in exactly-once mode (each request a transaction,
    /// one at a time), 64 callers: the run and server CPU ms per request.
    pub exactly_once: (Run, f64),
    /// The generated pair over SCRAM-SHA-512 + TLS, 64 in flight: the run and server CPU ms
    /// per request.
    pub secure: (Run, f64),
    /// The raw pair with the echo in the runtime's shape (consumer thread, a task per request
    /// awaiting its reply's acknowledgement), 64 in flight: the run and server CPU ms per
    /// request.
    pub raw_acked: (Run, f64),
}

/// Runs the NestJS client (`tests/nest/dist/client.js`) to completion (bounded); one retry if
/// it reports no result (said on stderr, so a flaky run is visible).
pub fn nest_client(broker: &str, fetch_wait: usize, args: &[&str]) -> Run {
    nest_client_once(broker, fetch_wait, args).unwrap_or_else(|out| {
        eprintln!("[transport] NestJS client {args:?} gave no result, retrying once: {out}");
        nest_client_once(broker, fetch_wait, args)
            .unwrap_or_else(|out| panic!("no result from NestJS client {args:?}: {out}"))
    })
}

fn nest_client_once(broker: &str, fetch_wait: usize, args: &[&str]) -> Result<Run, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nest");
    let mut child = Command::new("node")
        .arg(dir.join("dist/client.js"))
        .args(args)
        .current_dir(&dir)
        .env("KAFKA_BROKERS", broker)
        .env("FETCH_WAIT_MS", fetch_wait.to_string())
        .env("NEST_CLIENT_GROUP", "bench-caller")
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("NestJS client {args:?} did not finish in 10 min");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    use std::io::Read as _;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let line = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("rps").is_some())
        .ok_or(out)?;
    let f = |k: &str| line[k].as_f64().unwrap_or(0.0);
    Ok(Run {
        requests: f("requests") as usize,
        errors: f("errors") as usize,
        rps: f("rps"),
        p50: f("p50_ms"),
        p99: f("p99_ms"),
    })
}

/// Median with min and max.
#[derive(Clone, Copy, Debug)]
pub struct Fig {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Fig {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Fig {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return Fig {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Fig {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }

    fn json(&self) -> String {
        format!(
            "{{\"median\":{:.3},\"min\":{:.3},\"max\":{:.3}}}",
            self.median, self.min, self.max
        )
    }
}

/// Per pairing: sequential rps, p50, p99; 64-in-flight rps, p99; errors.
pub struct Pairing {
    pub name: &'static str,
    pub seq_rps: Fig,
    pub seq_p50: Fig,
    pub seq_p99: Fig,
    pub par_rps: Fig,
    pub par_p99: Fig,
    pub errors: usize,
}

impl Pairing {
    fn new(name: &'static str, runs: Vec<&[Run; 2]>) -> Pairing {
        Pairing {
            name,
            seq_rps: Fig::of(runs.iter().map(|r| r[0].rps)),
            seq_p50: Fig::of(runs.iter().map(|r| r[0].p50)),
            seq_p99: Fig::of(runs.iter().map(|r| r[0].p99)),
            par_rps: Fig::of(runs.iter().map(|r| r[1].rps)),
            par_p99: Fig::of(runs.iter().map(|r| r[1].p99)),
            errors: runs.iter().map(|r| r[0].errors + r[1].errors).sum(),
        }
    }
}

pub struct Summary {
    rounds: usize,
    seq: usize,
    par: usize,
    events: usize,
    fetch_wait: usize,
    pairings: [Pairing; 3],
    gen_rss: Fig,
    nest_rss: Fig,
    gen_cpu: Fig,
    nest_cpu: Fig,
    gen_events: Fig,
    raw_events: Fig,
    raw_rss: Fig,
    raw_cpu: Fig,
    gen_client_cpu: Fig,
    raw_client_cpu: Fig,
    allocs: [Fig; 4],
    plain_rps: Fig,
    plain_cpu: Fig,
    plain_allocs: Fig,
    eos_rps: Fig,
    eos_cpu: Fig,
    secure_rps: Fig,
    secure_p99: Fig,
    secure_cpu: Fig,
    acked_rps: Fig,
    acked_cpu: Fig,
    /// Per round, generated / raw: 64-in-flight req/s and server CPU per request (the two
    /// pairs of a round share its broker; the median of these is steadier than the ratio of
    /// medians).
    round_par: Fig,
    round_cpu: Fig,
    /// Per round, generated server CPU / the runtime-shaped echo's.
    round_cpu_shaped: Fig,
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

impl Summary {
    pub fn new(all: &[Round], seq: usize, par: usize, events: usize, fetch_wait: usize) -> Self {
        Summary {
            rounds: all.len(),
            seq,
            par,
            events,
            fetch_wait,
            pairings: [
                Pairing::new(
                    "generated Rust client → generated Rust server",
                    all.iter().map(|r| &r.generated).collect(),
                ),
                Pairing::new(
                    "NestJS ClientKafka → NestJS ServerKafka",
                    all.iter().map(|r| &r.nest).collect(),
                ),
                Pairing::new(
                    "raw rdkafka client → raw rdkafka echo server (the limit)",
                    all.iter().map(|r| &r.raw).collect(),
                ),
            ],
            gen_rss: Fig::of(all.iter().map(|r| r.server[0].0)),
            nest_rss: Fig::of(all.iter().map(|r| r.server[1].0)),
            gen_cpu: Fig::of(all.iter().map(|r| r.server[0].1)),
            nest_cpu: Fig::of(all.iter().map(|r| r.server[1].1)),
            raw_rss: Fig::of(all.iter().map(|r| r.server[2].0)),
            raw_cpu: Fig::of(all.iter().map(|r| r.server[2].1)),
            allocs: [0, 1, 2, 3].map(|i| Fig::of(all.iter().map(|r| r.allocs[i]))),
            gen_client_cpu: Fig::of(all.iter().map(|r| r.client_cpu[0])),
            raw_client_cpu: Fig::of(all.iter().map(|r| r.client_cpu[1])),
            gen_events: Fig::of(all.iter().map(|r| r.events[0])),
            raw_events: Fig::of(all.iter().map(|r| r.events[1])),
            plain_rps: Fig::of(all.iter().map(|r| r.plain.0.rps)),
            plain_cpu: Fig::of(all.iter().map(|r| r.plain.1)),
            plain_allocs: Fig::of(all.iter().map(|r| r.plain.2)),
            eos_rps: Fig::of(all.iter().map(|r| r.exactly_once.0.rps)),
            eos_cpu: Fig::of(all.iter().map(|r| r.exactly_once.1)),
            secure_rps: Fig::of(all.iter().map(|r| r.secure.0.rps)),
            secure_p99: Fig::of(all.iter().map(|r| r.secure.0.p99)),
            secure_cpu: Fig::of(all.iter().map(|r| r.secure.1)),
            acked_rps: Fig::of(all.iter().map(|r| r.raw_acked.0.rps)),
            acked_cpu: Fig::of(all.iter().map(|r| r.raw_acked.1)),
            round_par: Fig::of(all.iter().map(|r| ratio(r.generated[1].rps, r.raw[1].rps))),
            round_cpu: Fig::of(all.iter().map(|r| ratio(r.server[0].1, r.server[2].1))),
            round_cpu_shaped: Fig::of(all.iter().map(|r| ratio(r.server[0].1, r.raw_acked.1))),
        }
    }

    /// (name, value, target, met) for each target of issue 7.
    fn targets(&self) -> Vec<(&'static str, f64, &'static str, bool)> {
        let [g, n, r] = &self.pairings;
        let par = ratio(g.par_rps.median, r.par_rps.median);
        let p99 = ratio(g.par_p99.median, r.par_p99.median);
        let vs_nest = ratio(g.par_rps.median, n.par_rps.median);
        let emit = ratio(self.gen_events.median, self.raw_events.median);
        let cpu = ratio(self.gen_cpu.median, self.nest_cpu.median);
        let telemetry_rps = ratio(g.par_rps.median, self.plain_rps.median);
        let telemetry_cpu = ratio(self.gen_cpu.median, self.plain_cpu.median);
        vec![
            (
                "telemetry on / off, 64 in flight req/s",
                telemetry_rps,
                "≥ 0.9",
                telemetry_rps >= 0.9,
            ),
            (
                "telemetry on / off, server CPU per request",
                telemetry_cpu,
                "≤ 1.15",
                telemetry_cpu <= 1.15,
            ),
            (
                "generated / raw, 64 in flight req/s",
                par,
                "≥ 0.9",
                par >= 0.9,
            ),
            (
                "generated / raw, 64 in flight p99",
                p99,
                "≤ 1.2",
                p99 <= 1.2,
            ),
            (
                "generated / NestJS, 64 in flight req/s",
                vs_nest,
                "≥ 5",
                vs_nest >= 5.0,
            ),
            (
                "generated emit / raw producer, events/s",
                emit,
                "≥ 0.8",
                emit >= 0.8,
            ),
            (
                "generated server peak RSS MB",
                self.gen_rss.median,
                "≤ 15",
                self.gen_rss.median <= 15.0,
            ),
            (
                "generated / NestJS server CPU per request",
                cpu,
                "≤ 0.25",
                cpu <= 0.25,
            ),
        ]
    }

    pub fn print(&self) {
        println!();
        println!(
            "transport: tansu 0.6 in-memory, 3-partition topics, fetch wait {} ms, {} cores; {} rounds (fresh broker each), {} sequential + {} at 64 in flight per pairing, {} events; median (min–max)",
            self.fetch_wait,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            self.rounds,
            self.seq,
            self.par,
            self.events
        );
        println!();
        println!("| pairing | sequential req/s | p50 ms | p99 ms | 64 in flight req/s | p99 ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        for p in &self.pairings {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                p.seq_rps.show(0),
                p.seq_p50.show(1),
                p.seq_p99.show(1),
                p.par_rps.show(0),
                p.par_p99.show(1),
                p.errors
            );
        }
        println!();
        println!("| server under 64 in flight | peak RSS MB | CPU ms per request |");
        println!("|---|---|---|");
        println!(
            "| generated Rust server | {} | {} |",
            self.gen_rss.show(1),
            self.gen_cpu.show(3)
        );
        println!(
            "| NestJS server | {} | {} |",
            self.nest_rss.show(1),
            self.nest_cpu.show(3)
        );
        println!(
            "| raw rdkafka echo server (reference) | {} | {} |",
            self.raw_rss.show(1),
            self.raw_cpu.show(3)
        );
        println!(
            "| raw echo in the runtime's shape (consumer thread, a task per request awaiting its ack; {} req/s) | | {} |",
            self.acked_rps.show(0),
            self.acked_cpu.show(3)
        );
        println!();
        println!("| client process under 64 in flight | CPU ms per request |");
        println!("|---|---|");
        println!(
            "| generated Rust client | {} |",
            self.gen_client_cpu.show(3)
        );
        println!("| raw rdkafka client | {} |", self.raw_client_cpu.show(3));
        println!();
        println!("| Rust allocations per request, 64 in flight | client | server |");
        println!("|---|---|---|");
        println!(
            "| generated | {} | {} |",
            self.allocs[0].show(1),
            self.allocs[1].show(1)
        );
        println!(
            "| raw rdkafka | {} | {} |",
            self.allocs[2].show(1),
            self.allocs[3].show(1)
        );
        println!(
            "| generated, telemetry off (server) | | {} |",
            self.plain_allocs.show(1)
        );
        println!();
        println!("| generated pair, 64 in flight | req/s | server CPU ms/request |");
        println!("|---|---|---|");
        println!(
            "| telemetry on (context, trace propagation, metrics) | {} | {} |",
            self.pairings[0].par_rps.show(0),
            self.gen_cpu.show(3)
        );
        println!(
            "| telemetry off (context only) | {} | {} |",
            self.plain_rps.show(0),
            self.plain_cpu.show(3)
        );
        println!(
            "| exactly-once server (a transaction per request, one at a time) | {} | {} |",
            self.eos_rps.show(0),
            self.eos_cpu.show(3)
        );
        println!(
            "| SCRAM-SHA-512 + TLS (own broker; p99 {} ms) | {} | {} |",
            self.secure_p99.show(1),
            self.secure_rps.show(0),
            self.secure_cpu.show(3)
        );
        println!();
        println!("| events (acks=all, idempotent) | events/s |");
        println!("|---|---|");
        println!("| generated client emit | {} |", self.gen_events.show(0));
        println!("| raw rdkafka producer | {} |", self.raw_events.show(0));
        println!();
        println!("| ratio (of medians) | value | issue 7's target | |");
        println!("|---|---|---|---|");
        let [g, n, r] = &self.pairings;
        println!(
            "| generated / NestJS, sequential req/s | {:.2} | | |",
            ratio(g.seq_rps.median, n.seq_rps.median)
        );
        println!(
            "| generated / raw, sequential req/s | {:.2} | | |",
            ratio(g.seq_rps.median, r.seq_rps.median)
        );
        for (name, value, target, ok) in self.targets() {
            println!("| {name} | {value:.2} | {target} | {} |", verdict(ok));
        }
        println!();
        println!("| per round, then the median (min–max) | value | issue 11's target |");
        println!("|---|---|---|");
        println!(
            "| generated / raw, 64 in flight req/s | {} | ≥ 0.97 |",
            self.round_par.show(2)
        );
        println!(
            "| generated / raw echo, server CPU per request | {} | ≤ 1.2 |",
            self.round_cpu.show(2)
        );
        println!(
            "| generated / raw echo in the runtime's shape, server CPU per request | {} | |",
            self.round_cpu_shaped.show(2)
        );
    }

    pub fn json(&self) -> String {
        let mut out = format!(
            "{{\"rounds\":{},\"seq\":{},\"par\":{},\"events\":{},\"fetch_wait_ms\":{},\"pairings\":[",
            self.rounds, self.seq, self.par, self.events, self.fetch_wait
        );
        for (i, p) in self.pairings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"name\":{:?},\"seq_rps\":{},\"seq_p50_ms\":{},\"seq_p99_ms\":{},\"par_rps\":{},\"par_p99_ms\":{},\"errors\":{}}}",
                p.name,
                p.seq_rps.json(),
                p.seq_p50.json(),
                p.seq_p99.json(),
                p.par_rps.json(),
                p.par_p99.json(),
                p.errors
            ));
        }
        out.push_str(&format!(
            "],\"generated_server\":{{\"peak_rss_mb\":{},\"cpu_ms_per_request\":{}}},\"raw_server\":{{\"peak_rss_mb\":{},\"cpu_ms_per_request\":{}}},\"client_cpu_ms_per_request\":{{\"generated\":{},\"raw\":{}}},\"allocations_per_request\":{{\"generated_client\":{},\"generated_server\":{},\"raw_client\":{},\"raw_server\":{}}},\"nest_server\":{{\"peak_rss_mb\":{},\"cpu_ms_per_request\":{}}},\"events_per_s\":{{\"generated_emit\":{},\"raw_producer\":{}}},\"exactly_once\":{{\"rps\":{},\"server_cpu_ms_per_request\":{}}},\"scram_tls\":{{\"rps\":{},\"p99_ms\":{},\"server_cpu_ms_per_request\":{}}},\"raw_acked\":{{\"rps\":{},\"server_cpu_ms_per_request\":{}}},\"per_round\":{{\"generated_over_raw_par_rps\":{},\"generated_over_raw_server_cpu\":{},\"generated_over_shaped_server_cpu\":{}}},\"targets\":[",
            self.gen_rss.json(),
            self.gen_cpu.json(),
            self.raw_rss.json(),
            self.raw_cpu.json(),
            self.gen_client_cpu.json(),
            self.raw_client_cpu.json(),
            self.allocs[0].json(),
            self.allocs[1].json(),
            self.allocs[2].json(),
            self.allocs[3].json(),
            self.nest_rss.json(),
            self.nest_cpu.json(),
            self.gen_events.json(),
            self.raw_events.json(),
            self.eos_rps.json(),
            self.eos_cpu.json(),
            self.secure_rps.json(),
            self.secure_p99.json(),
            self.secure_cpu.json(),
            self.acked_rps.json(),
            self.acked_cpu.json(),
            self.round_par.json(),
            self.round_cpu.json(),
            self.round_cpu_shaped.json()
        ));
        for (i, (name, value, target, ok)) in self.targets().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"name\":{name:?},\"value\":{value:.3},\"target\":{target:?},\"met\":{ok}}}"
            ));
        }
        out.push_str("]}\n");
        out
    }
}
