//! Slow handlers on a real broker: handlers slower than the session timeout cause no
//! rebalance and no duplicate processing; the per-partition and global in-flight limits hold.

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
use std::time::{Duration, Instant};

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer, OffsetReset};
use axion_runtime::{Handler, Incoming, RawReplies, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, Project, GRAPH_SERVICE_CONTRACT,
    GRAPH_SERVICE_PATTERNS,
};
use support::broker::Broker;
use support::raw;

const SESSION_TIMEOUT_MS: u64 = 6_000;

/// Sleeps `delay` per message; counts runs per correlation id (or payload, for events) and
/// the concurrency it sees, overall and per `"p"` field of the payload.
#[derive(Clone, Default)]
struct Slow {
    delay: Duration,
    runs: Arc<Mutex<HashMap<String, usize>>>,
    now: Arc<Mutex<(usize, HashMap<i64, usize>)>>,
    peak: Arc<Mutex<(usize, HashMap<i64, usize>)>>,
    done: Arc<AtomicUsize>,
}

impl Handler for Slow {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, incoming: Incoming) -> RawReplies {
        let key = incoming
            .correlation_id
            .clone()
            .unwrap_or_else(|| String::from_utf8_lossy(&incoming.payload).into_owned());
        *self.runs.lock().unwrap().entry(key).or_default() += 1;
        let partition = serde_json::from_slice::<serde_json::Value>(&incoming.payload)
            .ok()
            .and_then(|v| v["p"].as_i64())
            .unwrap_or(-1);
        {
            let (now, peak) = (
                &mut *self.now.lock().unwrap(),
                &mut *self.peak.lock().unwrap(),
            );
            now.0 += 1;
            *now.1.entry(partition).or_default() += 1;
            peak.0 = peak.0.max(now.0);
            let p = peak.1.entry(partition).or_default();
            *p = (*p).max(now.1[&partition]);
        }
        let me = self.clone();
        Box::pin(axion_runtime::futures::stream::once(async move {
            tokio::time::sleep(me.delay).await;
            {
                let mut now = me.now.lock().unwrap();
                now.0 -= 1;
                *now.1.get_mut(&partition).unwrap() -= 1;
            }
            me.done.fetch_add(1, Ordering::SeqCst);
            let name = serde_json::from_slice::<CreateProjectRequest>(&incoming.payload)
                .map(|r| r.name)
                .unwrap_or_default();
            axion_runtime::json::encode(&CreateProjectResponse {
                project: Some(Project {
                    name,
                    ..Default::default()
                }),
            })
            .map(Into::into)
        }))
    }
}

fn cfg(broker: &Broker, client_id: &str) -> axion_runtime::kafka::KafkaConfigBuilder {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(90_000)
        .session_timeout_ms(SESSION_TIMEOUT_MS as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_slower_than_the_session_timeout_cause_no_rebalance_or_duplicates() {
    const CALLS: usize = 6;
    let broker = Broker::start();
    let config = cfg(&broker, "slow").max_in_flight(4).build().unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let handler = Slow {
        delay: Duration::from_millis(SESSION_TIMEOUT_MS + 2_000),
        ..Slow::default()
    };
    let server = KafkaServer::start(&config, handler.clone()).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let assignments_at_start = server.assignments();

    let kafka = KafkaClient::connect(
        &cfg(&broker, "slow-caller").build().unwrap(),
        &[&GRAPH_SERVICE_CONTRACT],
    )
    .await
    .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let calls: Vec<_> = (0..CALLS)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let name = format!("slow-{n}");
                let reply = client
                    .create_project(&CreateProjectRequest {
                        name: name.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(reply.project.unwrap().name, name);
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    // A little longer than a session timeout after the last reply: a late rebalance shows.
    tokio::time::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1_000)).await;
    let (assignments, revocations) = (server.assignments(), server.revocations());
    server.shutdown().await;

    let runs = handler.runs.lock().unwrap().clone();
    eprintln!(
        "slow handlers ({} ms each, session timeout {SESSION_TIMEOUT_MS} ms): {CALLS} calls, {} handler runs, \
         assignments {assignments} (at start {assignments_at_start}), revocations {revocations}",
        SESSION_TIMEOUT_MS + 2_000,
        runs.values().sum::<usize>()
    );
    assert_eq!(runs.len(), CALLS);
    assert!(
        runs.values().all(|n| *n == 1),
        "duplicate processing: {runs:?}"
    );
    assert_eq!(revocations, 0, "partitions were taken away mid-handler");
    assert_eq!(assignments, assignments_at_start, "the group rebalanced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_partition_and_global_in_flight_limits_hold() {
    const PARTITIONS: i32 = 3;
    const PER_PARTITION: usize = 2;
    const GLOBAL: usize = 4;
    const EVENTS_PER_PARTITION: usize = 20;
    let broker = Broker::start();
    let config = cfg(&broker, "limits")
        .topic_partitions(PARTITIONS as i64)
        .max_in_flight(GLOBAL as i64)
        .max_in_flight_per_partition(PER_PARTITION as i64)
        // The backlog is produced before the group exists: read it from the start.
        .auto_offset_reset(OffsetReset::Earliest)
        .build()
        .unwrap();
    assert_eq!(config.max_in_flight_per_partition, PER_PARTITION);
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    // Queue the events first, so every partition has a backlog when the server starts.
    let producer = raw::producer(&broker.address());
    for i in 0..EVENTS_PER_PARTITION {
        for p in 0..PARTITIONS {
            let payload = format!(r#"{{"p":{p},"i":{i}}}"#);
            raw::send(
                &producer,
                GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
                Some(p),
                &[],
                Some(payload.as_bytes()),
            )
            .await;
        }
    }
    let handler = Slow {
        delay: Duration::from_millis(40),
        ..Slow::default()
    };
    let server = KafkaServer::start(&config, handler.clone()).await.unwrap();
    let total = EVENTS_PER_PARTITION * PARTITIONS as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while handler.done.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
    let (global_peak, partition_peaks) = handler.peak.lock().unwrap().clone();
    eprintln!(
        "in-flight limits: global {GLOBAL}, per partition {PER_PARTITION}; observed peaks: global {global_peak}, \
         per partition {partition_peaks:?}; handled {}",
        handler.done.load(Ordering::SeqCst)
    );
    let runs = handler.runs.lock().unwrap().clone();
    for i in 0..EVENTS_PER_PARTITION {
        for p in 0..PARTITIONS {
            let key = format!(r#"{{"p":{p},"i":{i}}}"#);
            assert_eq!(runs.get(&key), Some(&1), "{key}: handled exactly once");
        }
    }
    assert_eq!(runs.len(), total, "nothing else was handled");
    assert!(
        global_peak <= GLOBAL,
        "global limit exceeded: {global_peak}"
    );
    for (p, peak) in &partition_peaks {
        assert!(*peak <= PER_PARTITION, "partition {p}: {peak} at once");
    }
    assert_eq!(partition_peaks.len(), PARTITIONS as usize);
    // The limits were reached, not just respected by a server that ran one at a time.
    assert!(
        global_peak > PER_PARTITION,
        "partitions ran in parallel: {global_peak}"
    );
    assert!(
        partition_peaks.values().any(|p| *p == PER_PARTITION),
        "a partition reached its limit: {partition_peaks:?}"
    );
}
