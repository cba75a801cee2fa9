//! Hostile records against a live server: a seeded fuzzer writes records no well-behaved
//! peer would — random and truncated headers, header keys that are not UTF-8, null and huge
//! values, thousands of headers, null keys and values, oversized payloads, garbage and deeply
//! nested JSON, valid requests with hostile reply addresses — to the request, event and reply
//! topics of the example `GraphService`. Afterwards the server is alive and healthy (its
//! `/health`), a NestJS client's calls are answered, every fuzz record is accounted for
//! (handled, answered, or in `<pattern>.dlq`: none lost) and the committed offsets reached the
//! end of every topic.
//!
//! `AXION_FUZZ_RECORDS` (default 1500) and `AXION_FUZZ_SEED` (default 0x5eed) make a longer or
//! another run: `AXION_FUZZ_RECORDS=50000 cargo test -p axion-runtime --test kafka_hostile`.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod capture;
    #[allow(dead_code)]
    pub mod nest;
    #[allow(dead_code)]
    pub mod raw;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axion_runtime::edge::Edge;
use axion_runtime::kafka::dlq::{DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC};
use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaConfig, KafkaServer, CORRELATION_ID, REPLY_PARTITION,
    REPLY_TOPIC,
};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
    GRAPH_SERVICE_REPLY_TOPICS, GRAPH_SERVICE_TRUSTED_ORIGINS,
};
use support::broker::Broker;
use support::raw;

const PARTITIONS: i32 = 2;
const MAX_BYTES: usize = 4096;
const CREATE: &str = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
const EVENT: &str = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
const CREATE_REPLY: &str = GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(default)
}

/// One generated record.
struct Fuzzed {
    topic: &'static str,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    /// The unique correlation id it carries, if it is a request whose id the server can read.
    id: Option<String>,
}

/// Writes hostile records, seeded: the same seed gives the same records.
struct Fuzzer {
    rng: fastrand::Rng,
    n: usize,
}

impl Fuzzer {
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let mut v = vec![0u8; self.rng.usize(0..=max)];
        self.rng.fill(&mut v);
        v
    }

    fn truncated(&mut self, text: &[u8]) -> Vec<u8> {
        text[..self.rng.usize(0..=text.len())].to_vec()
    }

    /// A header key other than the reply address's (those come from [`Fuzzer::address`], so
    /// that which records are requests with a usable address stays known).
    fn header_key(&mut self) -> Vec<u8> {
        let key = match self.rng.u8(0..10) {
            0 => b"kafka_nest-err".to_vec(),
            1 => b"kafka_nest-is-disposed".to_vec(),
            2 => b"x-tenant".to_vec(),
            3 => b"content-type".to_vec(),
            4 => b"axion-deadline".to_vec(),
            5 => b"traceparent".to_vec(),
            6 => Vec::new(),
            // Not UTF-8.
            7 => [&[0xff, 0xfe][..], &self.bytes(8)].concat(),
            _ => self.bytes(24),
        };
        let address = [CORRELATION_ID, REPLY_TOPIC, REPLY_PARTITION];
        if address.iter().any(|a| key.as_slice() == a.as_bytes()) {
            return b"x-not-an-address".to_vec();
        }
        key
    }

    fn header_value(&mut self) -> Option<Vec<u8>> {
        Some(match self.rng.u8(0..10) {
            0 => return None,
            1 => Vec::new(),
            2 => self.bytes(64),
            3 => vec![b'v'; self.rng.usize(1_000..60_000)],
            4 => CREATE_REPLY.as_bytes().to_vec(),
            5 => self.truncated(CREATE_REPLY.as_bytes()),
            6 => b"-1".to_vec(),
            7 => b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec(),
            8 => format!("{}", self.rng.u64(..)).into_bytes(),
            _ => b"application/json".to_vec(),
        })
    }

    fn payload(&mut self) -> Option<Vec<u8>> {
        let name = format!("fz-{}-{}", self.n, self.rng.u32(..));
        Some(match self.rng.u8(0..12) {
            0 => return None,
            1 => Vec::new(),
            2 => self.bytes(200),
            3 => self.truncated(format!(r#"{{"name":"{name}","labels":["a","b"]}}"#).as_bytes()),
            4 => format!(r#"{{"name":{}}}"#, self.rng.u64(..)).into_bytes(),
            5 => vec![b'x'; MAX_BYTES + self.rng.usize(1..2_000)],
            6 => [&b"["[..].repeat(self.rng.usize(100..3_000))[..], b"1"].concat(),
            7 => format!(r#"{{"project":{{"id":"{name}","name":"{name}"}}}}"#).into_bytes(),
            8 => b"null".to_vec(),
            9 => [&[0u8][..], &self.bytes(40)].concat(),
            _ => format!(r#"{{"name":"{name}"}}"#).into_bytes(),
        })
    }

    /// A reply address: usable and unique, or hostile.
    fn address(&mut self, headers: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Option<String> {
        let id = format!("fz-id-{}", self.n);
        let mut push = |k: &str, v: &[u8]| headers.push((k.as_bytes().to_vec(), Some(v.to_vec())));
        match self.rng.u8(0..11) {
            // Usable.
            0..=2 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, CREATE_REPLY.as_bytes());
                let partition = self.rng.i32(0..PARTITIONS).to_string();
                push(REPLY_PARTITION, partition.as_bytes());
                return Some(id);
            }
            // Hostile reply topics: an event topic, a topic that does not exist, garbage.
            3 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, EVENT.as_bytes());
            }
            4 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, b"axion.nowhere.reply");
            }
            5 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, b"../../etc/passwd");
            }
            // A partition that does not exist.
            6 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, CREATE_REPLY.as_bytes());
                push(REPLY_PARTITION, b"77");
                return Some(id);
            }
            // A correlation id that is not text, a partition that is not a number, a reply
            // topic that is legal but not this pattern's.
            7 => {
                push(CORRELATION_ID, b"\xff\x00\x01");
                push(REPLY_TOPIC, CREATE_REPLY.as_bytes());
            }
            8 => {
                push(CORRELATION_ID, id.as_bytes());
                push(REPLY_TOPIC, CREATE_REPLY.as_bytes());
                push(REPLY_PARTITION, b"zero");
            }
            9 => {
                push(CORRELATION_ID, id.as_bytes());
                push(
                    REPLY_TOPIC,
                    &CREATE_REPLY.as_bytes()[..CREATE_REPLY.len() - 3],
                );
            }
            // Half an address.
            _ => push(CORRELATION_ID, id.as_bytes()),
        }
        None
    }

    /// A record a well-behaved peer would write: a request with a usable address, or an
    /// event, with a JSON payload that decodes (a third of the records, so that hostile ones
    /// are mixed into real work).
    fn benign(&mut self) -> Fuzzed {
        let name = format!("ok-{}", self.n);
        let mut headers = vec![(b"x-tenant".to_vec(), Some(b"acme".to_vec()))];
        if self.rng.bool() {
            let id = format!("fz-id-{}", self.n);
            headers.push((
                CORRELATION_ID.as_bytes().to_vec(),
                Some(id.clone().into_bytes()),
            ));
            headers.push((
                REPLY_TOPIC.as_bytes().to_vec(),
                Some(CREATE_REPLY.as_bytes().to_vec()),
            ));
            let partition = self.rng.i32(0..PARTITIONS).to_string().into_bytes();
            headers.push((REPLY_PARTITION.as_bytes().to_vec(), Some(partition)));
            let payload = format!(r#"{{"name":"{name}","labels":["x"]}}"#).into_bytes();
            return Fuzzed {
                topic: CREATE,
                headers,
                key: Some(name.into_bytes()),
                payload: Some(payload),
                id: Some(id),
            };
        }
        let payload = format!(r#"{{"project":{{"id":"{name}","name":"{name}"}}}}"#).into_bytes();
        Fuzzed {
            topic: EVENT,
            headers,
            key: None,
            payload: Some(payload),
            id: None,
        }
    }

    fn next(&mut self) -> Fuzzed {
        self.n += 1;
        if self.rng.u8(0..3) == 0 {
            return self.benign();
        }
        let topic = match self.rng.u8(0..10) {
            0..=4 => CREATE,
            5..=7 => EVENT,
            _ => CREATE_REPLY,
        };
        let mut headers = Vec::new();
        let mut id = None;
        if self.rng.bool() {
            id = self.address(&mut headers);
        }
        // Now and then thousands of small headers; else a few of any size.
        let many = self.rng.u8(0..20) == 0;
        let extra = if many {
            self.rng.usize(500..3_000)
        } else {
            self.rng.usize(0..6)
        };
        for _ in 0..extra {
            let k = self.header_key();
            let v = if many {
                Some(self.bytes(16))
            } else {
                self.header_value()
            };
            if self.rng.bool() {
                headers.push((k, v));
            } else {
                headers.insert(0, (k, v));
            }
        }
        let key = match self.rng.u8(0..4) {
            0 => None,
            1 => Some(Vec::new()),
            _ => Some(self.bytes(64)),
        };
        Fuzzed {
            topic,
            headers,
            key,
            payload: self.payload(),
            id,
        }
    }
}

/// A record, shortened, for a failure message.
fn describe(r: &Fuzzed) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .take(12)
        .map(|(k, v)| {
            let v = v
                .as_deref()
                .map(|v| String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned());
            format!("{}={v:?}", String::from_utf8_lossy(k))
        })
        .collect();
    let payload = r
        .payload
        .as_deref()
        .map(|p| String::from_utf8_lossy(&p[..p.len().min(120)]).into_owned());
    format!(
        "headers ({}) {headers:?} payload {payload:?}",
        r.headers.len()
    )
}

async fn produce(p: &rdkafka::producer::FutureProducer, r: &Fuzzed) -> (i32, i64) {
    use rdkafka::message::OwnedHeaders;
    use rdkafka::producer::FutureRecord;
    let hdrs = r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        axion_runtime::kafka::headers::with_raw(h, k, v.as_deref())
    });
    let mut record = FutureRecord::<[u8], [u8]>::to(r.topic).headers(hdrs);
    if let Some(key) = &r.key {
        record = record.key(key);
    }
    if let Some(payload) = &r.payload {
        record = record.payload(payload);
    }
    let delivery = p
        .send(record, Duration::from_secs(20))
        .await
        .unwrap_or_else(|(e, _)| panic!("cannot produce to {}: {e}", r.topic));
    (delivery.partition, delivery.offset)
}

/// `GET path` on `address`: the status line and body.
async fn http_get(address: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("the edge answers")
        .unwrap();
    out
}

async fn wait_committed(address: &str, group: &str, topic: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let (committed, ends) = (
            raw::committed(address, group, topic, PARTITIONS),
            raw::ends(address, topic, PARTITIONS),
        );
        if committed == ends {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("{topic}: committed {committed:?}, ends {ends:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_server_survives_seeded_hostile_records_and_loses_none() {
    let capture = support::capture::Capture::install();
    let records = env_number("AXION_FUZZ_RECORDS", 1_500) as usize;
    let seed = env_number("AXION_FUZZ_SEED", 0x5eed);
    let broker = Broker::start();
    let address = broker.address();
    let config = KafkaConfig::builder()
        .brokers([address.clone()])
        .client_id("fuzzed")
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(PARTITIONS as i64)
        .max_message_bytes(MAX_BYTES as i64)
        .max_in_flight_per_partition(4)
        // A partition that does not exist is reported at once, not after librdkafka's 30 s.
        .librdkafka("topic.metadata.propagation.max.ms", "1000")
        .build()
        .unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let graph = Arc::new(graph::Graph::default());
    let server = Arc::new(
        KafkaServer::start(&config, GraphServiceServer::from_arc(graph.clone()))
            .await
            .unwrap(),
    );
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge_address = listener.local_addr().unwrap().to_string();
    let (stop_edge, edge_stopped) = tokio::sync::oneshot::channel::<()>();
    let edge = tokio::spawn(
        Edge::new(GRAPH_SERVICE_TRUSTED_ORIGINS)
            .check("kafka-consumer", server.clone())
            .serve(listener, async move {
                let _ = edge_stopped.await;
            }),
    );
    // A caller connected before the fuzz: its reply reader meets the records fuzzed into the
    // reply topic.
    let kafka = KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());

    let producer = raw::producer(&address);
    let mut fuzzer = Fuzzer {
        rng: fastrand::Rng::with_seed(seed),
        n: 0,
    };
    // (topic, partition, offset) -> the unique id of a request with a usable address.
    let mut written: BTreeMap<(&'static str, i32, i64), Option<String>> = BTreeMap::new();
    // What each record was, to show a lost one.
    let mut shown: BTreeMap<(&'static str, i32, i64), String> = BTreeMap::new();
    let started = Instant::now();
    for _ in 0..records {
        let record = fuzzer.next();
        let at = produce(&producer, &record).await;
        shown.insert((record.topic, at.0, at.1), describe(&record));
        written.insert((record.topic, at.0, at.1), record.id);
    }
    let wrote = started.elapsed();

    let group = GRAPH_SERVICE_CONTRACT.server_group;
    for topic in [CREATE, EVENT] {
        assert!(
            wait_committed(&address, group, topic, Duration::from_secs(180)).await,
            "{topic}: the committed offsets reached the end"
        );
    }
    let count = |topic: &str| written.keys().filter(|(t, ..)| *t == topic).count();
    let (requests, events, replies) = (count(CREATE), count(EVENT), count(CREATE_REPLY));

    // Dead letters, by where they came from.
    let mut dead: BTreeMap<(String, i32, i64), String> = BTreeMap::new();
    for topic in [CREATE, EVENT] {
        let dlq = format!("{topic}.dlq");
        for letter in raw::read_to_end(&address, &dlq, PARTITIONS, Duration::from_secs(60)) {
            let number = |k: &str| raw::header(&letter, k).and_then(|v| v.parse::<i64>().ok());
            let origin = (
                raw::header(&letter, DLQ_TOPIC).unwrap_or_default(),
                number(DLQ_PARTITION).unwrap_or(-1) as i32,
                number(DLQ_OFFSET).unwrap_or(-1),
            );
            let reason = raw::header(&letter, DLQ_REASON).unwrap_or_default();
            assert!(
                dead.insert(origin.clone(), reason).is_none(),
                "{origin:?} dead-lettered twice"
            );
        }
    }
    // Answers, by correlation id.
    let answered: BTreeSet<String> =
        raw::read_to_end(&address, CREATE_REPLY, PARTITIONS, Duration::from_secs(60))
            .iter()
            .filter_map(|m| raw::header(m, CORRELATION_ID))
            .collect();

    let mut lost = Vec::new();
    let (mut in_dlq, mut replied) = (0, 0);
    for ((topic, partition, offset), id) in &written {
        if *topic == CREATE_REPLY {
            continue;
        }
        if dead.contains_key(&(topic.to_string(), *partition, *offset)) {
            in_dlq += 1;
        } else if id.as_ref().is_some_and(|id| answered.contains(id)) {
            replied += 1;
        } else if *topic == CREATE {
            lost.push((*topic, *partition, *offset));
        }
    }
    // Events neither dead-lettered nor answered were handled: the handler saw each once.
    let handled = graph.received.lock().unwrap().len();
    let events_in_dlq = dead.keys().filter(|(t, ..)| t == EVENT).count();
    let events_replied = written
        .iter()
        .filter(|((t, p, o), id)| {
            *t == EVENT
                && !dead.contains_key(&(t.to_string(), *p, *o))
                && id.as_ref().is_some_and(|id| answered.contains(id))
        })
        .count();
    let events_lost = events as i64 - (events_in_dlq + events_replied + handled) as i64;
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in dead.values() {
        *reasons.entry(reason.as_str()).or_default() += 1;
    }
    eprintln!(
        "fuzz (seed {seed:#x}): {records} records written in {wrote:?} ({requests} requests, {events} events, {replies} on the reply topic); \
         handled events {handled}, answered {replied}, dead-lettered {in_dlq} {reasons:?}, lost {}",
        lost.len() as i64 + events_lost
    );
    for at in &lost {
        let (topic, partition, offset) = at;
        let (p, o) = (partition.to_string(), offset.to_string());
        let logged: Vec<String> = capture
            .events()
            .iter()
            .filter(|e| {
                e.field("pattern") == Some(*topic)
                    && e.field("partition") == Some(&p)
                    && e.field("offset") == Some(&o)
            })
            .map(|e| e.text())
            .collect();
        eprintln!(
            "lost {at:?}: {}\n  id {:?}\n  logged {logged:#?}",
            shown[at], written[at]
        );
    }
    assert!(
        lost.is_empty(),
        "requests neither answered nor dead-lettered: {lost:?}"
    );
    assert_eq!(
        handled + events_in_dlq + events_replied,
        events,
        "every event accounted for"
    );

    // Alive and healthy, and serving: a Rust caller (whose reply reader read the fuzzed
    // replies) and a NestJS caller are answered.
    assert!(server.failure().is_none() && kafka.failure().is_none());
    let health = http_get(&edge_address, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let reply = client
        .create_project(&CreateProjectRequest {
            name: "after-the-fuzz".into(),
            ..Default::default()
        })
        .await
        .expect("a Rust caller is answered");
    assert_eq!(reply.project.unwrap().name, "after-the-fuzz");
    let nest_broker = address.clone();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client(
            &nest_broker,
            &["scenario", "nest-after-the-fuzz"],
            "fuzz-nest-caller",
            Duration::from_secs(90),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, Some(0), "the NestJS caller: {lines:#?}");
    let _ = stop_edge.send(());
    let _ = edge.await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.shutdown().await;
    }
}

// ---- Hard bounds: memory under a flood, the stop's budget ----------------------------------

/// Server processes of these tests are this binary, re-run with `CHILD_ENV` set to their
/// directory and `CHILD_MODE` to `hang` or `flood`.
const CHILD_ENV: &str = "AXION_HOSTILE_CHILD";
const CHILD_MODE: &str = "AXION_HOSTILE_MODE";
const CHILD_BROKER: &str = "AXION_HOSTILE_BROKER";
const CHILD_GROUP: &str = "AXION_HOSTILE_GROUP";
/// The flood's byte budget.
const FLOOD_BUDGET: usize = 32 << 20;
const FLOOD_PARTITIONS: i32 = 12;
const DRAIN_MS: u64 = 3_000;

/// Events and requests whose project name starts with `hang` never finish, those with
/// `block` block their thread for 3 s, those with `slow` answer after 2 s; every run is
/// written to `<dir>/ran` first.
struct Hanging {
    ran: std::sync::Mutex<std::fs::File>,
}

impl axion_runtime::Handler for Hanging {
    fn contract(&self) -> &'static axion_runtime::ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: axion_runtime::Incoming) -> axion_runtime::RawReplies {
        use std::io::Write as _;
        let v: serde_json::Value = serde_json::from_slice(&incoming.payload).unwrap_or_default();
        let name = v
            .pointer("/name")
            .or_else(|| v.pointer("/project/name"))
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned();
        let mut ran = self.ran.lock().unwrap();
        let _ = writeln!(ran, "{name}");
        let _ = ran.flush();
        Box::pin(axion_runtime::futures::stream::once(async move {
            if name.starts_with("hang") {
                std::future::pending::<()>().await;
            }
            if name.starts_with("block") {
                // What a synchronous client does: the timeout cannot stop this.
                std::thread::sleep(Duration::from_secs(3));
            }
            if name.starts_with("slow") {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let reply = serde_json::json!({ "project": { "name": name } });
            Ok(serde_json::to_vec(&reply).unwrap().into())
        }))
    }
}

fn child_config(address: &str, group: &str, partitions: i32) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([address.to_owned()])
        .client_id(group)
        .server_group(group)
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(partitions as i64)
        .handler_timeout_ms(300_000)
        .drain_timeout_ms(DRAIN_MS as i64)
        .max_buffered_bytes(FLOOD_BUDGET as i64)
        .build()
        .unwrap()
}

/// Child mode: serve until SIGTERM (bounded), then stop within the budget.
async fn child(dir: std::path::PathBuf) {
    let address = std::env::var(CHILD_BROKER).unwrap();
    let group = std::env::var(CHILD_GROUP).unwrap();
    let partitions = if std::env::var(CHILD_MODE).as_deref() == Ok("flood") {
        FLOOD_PARTITIONS
    } else {
        PARTITIONS
    };
    let log = std::fs::File::create(dir.join("log")).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter("axion_runtime=info")
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .init();
    let handler = Hanging {
        ran: std::sync::Mutex::new(std::fs::File::create(dir.join("ran")).unwrap()),
    };
    let server = KafkaServer::start(&child_config(&address, &group, partitions), handler)
        .await
        .unwrap();
    if server.wait_assigned(Duration::from_secs(60)).await {
        std::fs::write(dir.join("ready"), b"").unwrap();
    }
    let mut status = tokio::time::interval(Duration::from_millis(200));
    let stop = axion_runtime::shutdown_signal();
    tokio::pin!(stop);
    let bound = tokio::time::sleep(Duration::from_secs(240));
    tokio::pin!(bound);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut bound => break,
            _ = status.tick() => {
                let _ = std::fs::write(dir.join("buffered"), server.buffered_bytes().to_string());
            }
        }
    }
    server.shutdown().await;
}

struct Child {
    process: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            eprintln!("---- server log ----\n{log}");
        }
    }
}

fn spawn_child(test: &str, mode: &str, address: &str, group: &str) -> Child {
    let dir = tempfile::tempdir().unwrap();
    let process = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .env(CHILD_MODE, mode)
        .env(CHILD_BROKER, address)
        .env(CHILD_GROUP, group)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let child = Child { process, dir };
    let ready = child.dir.path().join("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the server process never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn ran(child: &Child) -> Vec<String> {
    std::fs::read_to_string(child.dir.path().join("ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn sigterm_and_wait(child: &mut Child) -> (Duration, std::process::ExitStatus) {
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.process.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    loop {
        if let Some(status) = child.process.try_wait().unwrap() {
            return (started.elapsed(), status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server process did not exit within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stuck server (every handler hangs, so each partition's lane fills) flooded with records
/// of about 1 MB on 12 partitions holds no more than its byte budget plus a fixed overhead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_server_flooded_with_large_records_stays_within_its_byte_budget() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(dir.into()).await;
    }
    let broker = Broker::start();
    let address = broker.address();
    let group = "hostile-flood";
    let config = child_config(&address, group, FLOOD_PARTITIONS);
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let test = "a_stuck_server_flooded_with_large_records_stays_within_its_byte_budget";
    let child = tokio::task::block_in_place(|| spawn_child(test, "flood", &address, group));
    let idle = peak_rss(child.process.id());
    let producer = raw::producer(&address);
    const PER_PARTITION: usize = 24;
    let filler = "x".repeat(990_000);
    for n in 0..PER_PARTITION {
        for p in 0..FLOOD_PARTITIONS {
            let payload =
                format!(r#"{{"project":{{"name":"hang-{p}-{n}","description":"{filler}"}}}}"#);
            raw::send(&producer, EVENT, Some(p), &[], Some(payload.as_bytes())).await;
        }
    }
    let flood = PER_PARTITION * FLOOD_PARTITIONS as usize * filler.len();
    // Every partition's first record is running (and hangs): the flood reached every lane.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ran(&child).len() < FLOOD_PARTITIONS as usize {
        assert!(Instant::now() < deadline, "ran {:?}", ran(&child));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let librdkafka fill its prefetch queue and the lanes their budget.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = peak_rss(child.process.id());
    let held: usize = std::fs::read_to_string(child.dir.path().join("buffered"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "flood: {:.0} MiB on {FLOOD_PARTITIONS} partitions; budget {:.0} MiB; the server holds {:.1} MiB in its lanes; peak RSS {:.1} MiB (idle {:.1} MiB)",
        mib(flood),
        mib(FLOOD_BUDGET),
        mib(held),
        mib(peak),
        mib(idle),
    );
    assert!(
        held <= FLOOD_BUDGET / 2 + 1_100_000,
        "the lanes hold {held} bytes, over half the budget plus one record"
    );
    // Fixed overhead: the idle process, librdkafka's buffers of a fetch being decoded.
    assert!(
        peak <= idle + FLOOD_BUDGET + (24 << 20),
        "peak RSS {:.1} MiB over the budget {:.0} MiB plus the idle {:.1} MiB and 24 MiB",
        mib(peak),
        mib(FLOOD_BUDGET),
        mib(idle)
    );
}

/// SIGTERM to a server whose handler never ends: it exits 0 within its drain budget (+1 s
/// for the process to start its stop and end), once with the broker up — and the request is
/// handled again by the next server of the group — and once with the broker down and a reply
/// waiting in the producer (a flush that could wait for the reply timeout, 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_handler_that_never_ends_exits_within_the_drain_budget() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(dir.into()).await;
    }
    let test = "sigterm_with_a_handler_that_never_ends_exits_within_the_drain_budget";
    let budget = Duration::from_millis(DRAIN_MS) + Duration::from_secs(1);
    let mut broker = Broker::start();
    let address = broker.address();
    let producer = raw::producer(&address);
    let request = |name: &str| format!(r#"{{"name":"{name}"}}"#);
    let headers = |id: &'static str| -> [(&'static str, &'static [u8]); 3] {
        [
            (CORRELATION_ID, id.as_bytes()),
            (REPLY_TOPIC, CREATE_REPLY.as_bytes()),
            (REPLY_PARTITION, b"0"),
        ]
    };

    // Broker up.
    let group = "hostile-stop";
    let config = child_config(&address, group, PARTITIONS);
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let mut child = tokio::task::block_in_place(|| spawn_child(test, "hang", &address, group));
    raw::send(
        &producer,
        CREATE,
        Some(0),
        &headers("stop-1"),
        Some(request("hang-up").as_bytes()),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ran(&child).contains(&"hang-up".to_owned()) {
        assert!(Instant::now() < deadline, "the handler never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (took, status) = tokio::task::block_in_place(|| sigterm_and_wait(&mut child));
    eprintln!("stop with the broker up: exited {status} after {took:?} (budget {DRAIN_MS} ms)");
    assert!(status.success(), "{status}");
    assert!(took <= budget, "took {took:?}");
    let log = std::fs::read_to_string(child.dir.path().join("log")).unwrap_or_default();
    assert!(
        log.contains("abandoned"),
        "a WARN says the handler was abandoned:\n{log}"
    );
    drop(child);
    // The next server of the group gets the request again.
    let next = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let dir = tempfile::tempdir().unwrap();
    let handler = Hanging {
        ran: std::sync::Mutex::new(std::fs::File::create(dir.path().join("ran")).unwrap()),
    };
    let server = KafkaServer::start(&config, handler).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap_or_default();
        if ran.lines().any(|l| l == "hang-up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request was not redelivered: {ran:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(next);
    // Its handler hangs again: this stop is bounded too.
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() <= budget,
        "in-process stop took {:?}",
        started.elapsed()
    );

    // Broker down.
    let group = "hostile-stop-down";
    let mut child = tokio::task::block_in_place(|| spawn_child(test, "hang", &address, group));
    raw::send(
        &producer,
        CREATE,
        Some(1),
        &headers("stop-2"),
        Some(request("hang-down").as_bytes()),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ran(&child).contains(&"hang-down".to_owned()) {
        assert!(Instant::now() < deadline, "the handler never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A reply that is made during the drain and cannot go out.
    raw::send(
        &producer,
        CREATE,
        Some(0),
        &headers("stop-3"),
        Some(request("slow-down").as_bytes()),
    )
    .await;
    while !ran(&child).contains(&"slow-down".to_owned()) {
        assert!(Instant::now() < deadline, "the slow handler never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop();
    let (took, status) = tokio::task::block_in_place(|| sigterm_and_wait(&mut child));
    eprintln!("stop with the broker down: exited {status} after {took:?} (budget {DRAIN_MS} ms)");
    assert!(status.success(), "{status}");
    assert!(took <= budget, "took {took:?}");
}

// ---- A server stream run twice ---------------------------------------------------------

/// A server stream cut off by a rebalance and run again by the next owner sends its items
/// again: the caller, having taken the first run's items, fails with `ABORTED` at the first
/// item of the second run instead of taking both (items 1..k then 1..N). The server names the
/// run on every reply (`axion-run`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_run_again_by_another_server_fails_its_caller_with_aborted() {
    use axion_runtime::futures::StreamExt as _;
    use axion_runtime::kafka::headers::RUN;
    use axion_runtime::kafka::NEST_IS_DISPOSED;
    use contracts::axion::graph::v1::{ListProjectsRequest, Project};
    const LIST: &str = GRAPH_SERVICE_PATTERNS::LIST_PROJECTS;
    const LIST_REPLY: &str = GRAPH_SERVICE_REPLY_TOPICS::LIST_PROJECTS;
    let broker = Broker::start();
    let address = broker.address();
    let config = child_config(&address, "stream-runs", PARTITIONS);
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let kafka = KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let producer = raw::producer(&address);
    let item = |name: &str| {
        axion_runtime::json::encode(&Project {
            name: name.into(),
            ..Default::default()
        })
        .unwrap()
    };

    // No server: the test answers, as two servers would, one after the other.
    let mut answered = BTreeSet::new();
    for (case, runs) in [
        ("one run", ["00000000000000aa"; 4]),
        (
            "two runs",
            [
                "00000000000000aa",
                "00000000000000aa",
                "00000000000000bb",
                "00000000000000bb",
            ],
        ),
    ] {
        let call = tokio::spawn({
            let client = client.clone();
            async move {
                let mut stream = client
                    .list_projects(&ListProjectsRequest::default())
                    .await?;
                let mut got = Vec::new();
                while let Some(item) = stream.next().await {
                    got.push(item?.name);
                }
                Ok::<_, axion_runtime::RpcError>(got)
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let request = loop {
            let seen = raw::read_all(
                &address,
                LIST,
                PARTITIONS,
                answered.len() + 1,
                Duration::from_secs(5),
            );
            if let Some(new) = seen
                .into_iter()
                .find(|m| raw::header(m, CORRELATION_ID).is_some_and(|id| !answered.contains(&id)))
            {
                break new;
            }
            assert!(
                Instant::now() < deadline,
                "the call's request never arrived"
            );
        };
        let id = raw::header(&request, CORRELATION_ID).unwrap();
        answered.insert(id.clone());
        let partition: i32 = raw::header(&request, REPLY_PARTITION)
            .unwrap()
            .parse()
            .unwrap();
        for (n, run) in runs.iter().enumerate() {
            let name = ["p1", "p2", "p1", "p2"][n];
            let last = n == runs.len() - 1;
            let payload = item(name);
            let mut headers: Vec<(&str, &[u8])> =
                vec![(CORRELATION_ID, id.as_bytes()), (RUN, run.as_bytes())];
            if last {
                headers.push((NEST_IS_DISPOSED, b"\x00"));
            }
            raw::send(
                &producer,
                LIST_REPLY,
                Some(partition),
                &headers,
                Some(&payload),
            )
            .await;
        }
        let outcome = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the call ends")
            .unwrap();
        match case {
            "one run" => assert_eq!(outcome.unwrap(), ["p1", "p2", "p1", "p2"], "{case}"),
            _ => {
                let e = outcome.expect_err("a second run's items are not taken");
                assert!(e.is(axion_runtime::codes::ABORTED), "{e}");
            }
        }
    }

    // A real server names the run on every reply of a stream.
    let graph = Arc::new(graph::Graph::default());
    let server = KafkaServer::start(&config, GraphServiceServer::from_arc(graph.clone()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    for name in ["a", "b", "c"] {
        client
            .create_project(&CreateProjectRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let before = raw::ends(&address, LIST_REPLY, PARTITIONS)
        .iter()
        .sum::<i64>() as usize;
    let mut stream = client
        .list_projects(&ListProjectsRequest::default())
        .await
        .unwrap();
    let mut names = Vec::new();
    while let Some(p) = stream.next().await {
        names.push(p.unwrap().name);
    }
    assert_eq!(names, ["a", "b", "c"]);
    let replies = raw::read_all(
        &address,
        LIST_REPLY,
        PARTITIONS,
        before + 3,
        Duration::from_secs(30),
    );
    let mut runs_by_call: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for m in &replies {
        let id = raw::header(m, CORRELATION_ID).unwrap_or_default();
        if !answered.contains(&id) {
            runs_by_call
                .entry(id)
                .or_default()
                .insert(raw::header(m, RUN));
        }
    }
    assert_eq!(
        runs_by_call.len(),
        1,
        "the server's stream: {runs_by_call:?}"
    );
    let runs = runs_by_call.into_values().next().unwrap();
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    assert!(
        runs.iter()
            .all(|r| r.as_ref().is_some_and(|r| r.len() == 16)),
        "{runs:?}"
    );
    server.shutdown().await;
}

// ---- Handlers that block their thread ---------------------------------------------------

/// A handler that blocks its thread (here `std::thread::sleep` past the handler timeout),
/// which no timeout can stop, is reported: a WARN naming the pattern, partition and offset,
/// and `axion_handlers_blocking_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_blocks_its_thread_is_reported_with_its_record() {
    let capture = support::capture::Capture::install();
    let broker = Broker::start();
    let address = broker.address();
    let config = KafkaConfig::builder()
        .brokers([address.clone()])
        .client_id("blocking")
        .fetch_wait_ms(5)
        .topic_partitions(PARTITIONS as i64)
        .handler_timeout_ms(1_000)
        .build()
        .unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handler = Hanging {
        ran: std::sync::Mutex::new(std::fs::File::create(dir.path().join("ran")).unwrap()),
    };
    let server = KafkaServer::start(&config, handler).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let producer = raw::producer(&address);
    let payload = br#"{"project":{"name":"block-1"}}"#;
    let (partition, offset) = raw::send(&producer, EVENT, Some(1), &[], Some(payload)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let warned = loop {
        let found = capture
            .events()
            .into_iter()
            .find(|e| e.level == tracing::Level::WARN && e.text().contains("has not yielded"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no warning about the blocking handler"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(warned.field("pattern"), Some(EVENT));
    assert_eq!(
        warned.field("partition"),
        Some(partition.to_string().as_str())
    );
    assert_eq!(warned.field("offset"), Some(offset.to_string().as_str()));
    assert!(
        warned.text().contains("spawn_blocking"),
        "{}",
        warned.text()
    );
    let page = axion_runtime::metrics::global().render();
    assert!(
        page.lines()
            .any(|l| l.starts_with("axion_handlers_blocking_total{") && l.contains(EVENT)),
        "{page}"
    );
    server.shutdown().await;
}
