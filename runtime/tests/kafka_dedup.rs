//! De-duplication on a real broker, beyond redelivery after a stop (`kafka_faults`): two
//! copies of one request in flight at once run the handler once and get identical replies, and
//! a store that blocks (file or database I/O) never holds up the async workers.

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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axion_runtime::kafka::dedup::StoredReplies;
use axion_runtime::kafka::{
    ensure_topics, DedupStore, KafkaConfig, KafkaServer, MemoryDedup, CORRELATION_ID,
    REPLY_PARTITION, REPLY_TOPIC,
};
use axion_runtime::{Handler, Incoming, RawReplies, ServiceContract};
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, Project, GRAPH_SERVICE_CONTRACT,
    GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};
use support::broker::Broker;
use support::raw;

/// Creates after `delay`, counting runs per name.
#[derive(Clone, Default)]
struct Slow {
    delay: Duration,
    runs: Arc<Mutex<HashMap<String, usize>>>,
}

impl Handler for Slow {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        let me = self.clone();
        Box::pin(axion_runtime::futures::stream::once(async move {
            let request: CreateProjectRequest = axion_runtime::json::decode(&incoming.payload)?;
            *me.runs
                .lock()
                .unwrap()
                .entry(request.name.clone())
                .or_default() += 1;
            tokio::time::sleep(me.delay).await;
            axion_runtime::json::encode(&CreateProjectResponse {
                project: Some(Project {
                    id: format!("run-{}", me.runs.lock().unwrap()[&request.name]),
                    name: request.name,
                    ..Default::default()
                }),
            })
            .map(Into::into)
        }))
    }
}

fn config(broker: &Broker, group: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(group)
        .server_group(group)
        .fetch_wait_ms(5)
        .topic_partitions(1)
        // Copies of one request may run side by side: what the claim must prevent.
        .max_in_flight_per_partition(8)
        .build()
        .unwrap()
}

async fn send_create(producer: &rdkafka::producer::FutureProducer, id: &str, name: &str) {
    let headers: [(&str, &[u8]); 3] = [
        (CORRELATION_ID, id.as_bytes()),
        (
            REPLY_TOPIC,
            GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT.as_bytes(),
        ),
        (REPLY_PARTITION, b"0"),
    ];
    let payload = format!(r#"{{"name":"{name}"}}"#);
    raw::send(
        producer,
        GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
        Some(0),
        &headers,
        Some(payload.as_bytes()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_a_request_in_flight_run_the_handler_once() {
    let broker = Broker::start();
    let config = config(&broker, "dedup-concurrent");
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let handler = Slow {
        delay: Duration::from_millis(500),
        ..Slow::default()
    };
    let store = Arc::new(MemoryDedup::new(1000, Duration::from_secs(600)));
    let server = KafkaServer::start_with_dedup(&config, handler.clone(), store)
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);

    // The same correlation id twice, back to back (a caller's resend, or a redelivery racing
    // the first run), and one other request.
    let producer = raw::producer(&broker.address());
    send_create(&producer, "dup-1", "twice").await;
    send_create(&producer, "dup-1", "twice").await;
    send_create(&producer, "solo-1", "once").await;

    let replies = raw::read_all(
        &broker.address(),
        GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT,
        1,
        3,
        Duration::from_secs(30),
    );
    let mut by_id: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for m in &replies {
        by_id
            .entry(raw::header(m, CORRELATION_ID).unwrap_or_default())
            .or_default()
            .push(rdkafka::Message::payload(m).unwrap_or_default().to_vec());
    }
    let runs = handler.runs.lock().unwrap().clone();
    eprintln!(
        "dedup: runs {runs:?}, replies per id {:?}",
        by_id.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    assert_eq!(
        runs.get("twice"),
        Some(&1),
        "the handler ran for both copies: {runs:?}"
    );
    assert_eq!(runs.get("once"), Some(&1));
    let twice = &by_id["dup-1"];
    assert_eq!(twice.len(), 2, "each copy is answered: {by_id:?}");
    assert_eq!(twice[0], twice[1], "with the same reply");
    server.shutdown().await;
}

/// A store whose writes take `delay` on the calling thread, like a slow disk or database.
struct SlowStore {
    inner: MemoryDedup,
    delay: Duration,
    writes: AtomicUsize,
}

impl DedupStore for SlowStore {
    fn get(&self, key: &str) -> Option<StoredReplies> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, replies: &StoredReplies) {
        std::thread::sleep(self.delay);
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, replies)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_store_never_holds_up_the_async_workers() {
    let broker = Broker::start();
    let config = config(&broker, "dedup-blocking");
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let store = Arc::new(SlowStore {
        inner: MemoryDedup::new(1000, Duration::from_secs(600)),
        delay: Duration::from_secs(2),
        writes: AtomicUsize::new(0),
    });
    let server = KafkaServer::start_with_dedup(&config, Slow::default(), store.clone())
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);

    // Four requests at once: four 2 s writes, more than the two async workers. On a worker
    // they would stall every task (this ticker too) for seconds.
    let producer = raw::producer(&broker.address());
    for n in 0..4 {
        send_create(&producer, &format!("b-{n}"), &format!("b{n}")).await;
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            // Missed ticks are not made up afterwards: a stall shows as missing ticks.
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for _ in 0..500 {
                every.tick().await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut waited = 0;
    while store.writes.load(Ordering::SeqCst) < 4 && waited < 600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let during = ticks.load(Ordering::SeqCst);
    ticker.abort();
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        4,
        "every request stored"
    );
    // The writes took at least 2 s: 100 ticks if nothing blocks the workers.
    assert!(
        during >= 40,
        "only {during} ticks of 20 ms while the store wrote"
    );
    server.shutdown().await;
}
