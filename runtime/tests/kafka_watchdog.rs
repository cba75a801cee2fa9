//! The server's watchdog on a real broker: a member of the server group that owns partitions
//! and never commits (stuck, or a broker that lost the assignment: either way nobody consumes
//! them) is noticed. The server lists exactly those partitions as stalled (not its own, which
//! get traffic too), warns once each, and clears them when their committed offset moves again.

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
    pub mod raw;
}

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use axion_runtime::kafka::{ensure_topics, KafkaConfig, KafkaServer};
use axion_runtime::{Handler, Incoming, RawReplies, ServiceContract};
use contracts::axion::graph::v1::{GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::ClientConfig;
use support::broker::Broker;
use support::capture::Capture;
use support::raw;

/// Answers every request with an empty object at once.
struct Quick;

impl Handler for Quick {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }

    fn handle(&self, _incoming: Incoming) -> RawReplies {
        Box::pin(axion_runtime::futures::stream::once(async {
            Ok(b"{}".to_vec().into())
        }))
    }
}

/// A member of `group` on `topic` that polls (so it keeps its partitions) and commits only
/// when told to. Reports its assignment on `assigned`.
fn stuck_member(
    address: &str,
    group: &str,
    topic: &str,
    assigned: mpsc::Sender<BTreeSet<i32>>,
    commit: mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut reported = BTreeSet::new();
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let _ = consumer.poll(Duration::from_millis(20));
            let now: BTreeSet<i32> = consumer
                .assignment()
                .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            if now != reported {
                reported = now.clone();
                let _ = assigned.send(now);
            }
            if commit.try_recv().is_ok() {
                consumer.commit_consumer_state(CommitMode::Sync).unwrap();
            }
        }
    })
}

async fn until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_a_stuck_member_holds_are_reported_as_stalled() {
    let capture = Capture::install();
    let broker = Broker::start();
    let address = broker.address();
    let config = KafkaConfig::builder()
        .brokers([address.clone()])
        .client_id("watchdog")
        .fetch_wait_ms(5)
        .session_timeout_ms(6_000)
        .stall_warning_ms(1_500)
        .build()
        .unwrap();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let topic = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
    let group = GRAPH_SERVICE_CONTRACT.server_group;

    let server = KafkaServer::start(&config, Quick).await.unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let (assigned_tx, assigned) = mpsc::channel();
    let (commit, commit_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let member = stuck_member(&address, group, topic, assigned_tx, commit_rx, stop.clone());
    // The stuck member's share of the request topic, once the group settled.
    let mut held = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while held.is_empty() && Instant::now() < deadline {
        if let Ok(now) = assigned.recv_timeout(Duration::from_millis(100)) {
            held = now;
        }
    }
    assert!(!held.is_empty(), "the stuck member never got a partition");
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok(now) = assigned.try_recv() {
        held = now;
    }

    // Traffic on every partition: the server's are consumed, the stuck member's wait.
    let producer = raw::producer(&address);
    let served = GRAPH_SERVICE_PATTERNS::GET_PROJECT;
    for partition in 0..3 {
        for _ in 0..3 {
            raw::send(&producer, topic, Some(partition), &[], Some(b"{}")).await;
            raw::send(&producer, served, Some(partition), &[], Some(b"{}")).await;
        }
    }
    let expected: Vec<(String, i32)> = held.iter().map(|p| (topic.to_owned(), *p)).collect();
    let reported = until(Duration::from_secs(20), || {
        server.stalled_partitions() == expected
    })
    .await;
    assert!(
        reported,
        "stalled {:?}, the stuck member holds {expected:?}",
        server.stalled_partitions()
    );
    let warnings: Vec<(String, String)> = capture
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .filter(|e| {
            e.field("message")
                .is_some_and(|m| m.contains("nobody consumes"))
        })
        .map(|e| {
            let topic = e.field("topic").unwrap_or_default().to_owned();
            (topic, e.field("partition").unwrap_or_default().to_owned())
        })
        .collect();
    let expected_warnings: Vec<(String, String)> = held
        .iter()
        .map(|p| (topic.to_owned(), p.to_string()))
        .collect();
    assert_eq!(
        warnings, expected_warnings,
        "one warning per stalled partition"
    );
    eprintln!(
        "watchdog: the stuck member holds {held:?} of {topic}; stalled and warned: {warnings:?}"
    );
    // The consumer-lag gauge on /metrics: 3 messages waiting on each stuck partition.
    let page = axion_runtime::metrics::global().render();
    for p in &held {
        let line = format!(
            "axion_consumer_lag{{messaging_destination_name=\"{topic}\",messaging_destination_partition_id=\"{p}\",messaging_consumer_group_name=\"{group}\"}} 3"
        );
        assert!(page.contains(&line), "no {line:?} in\n{page}");
    }

    // The member catches up and commits: nothing is stalled any more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    commit.send(()).unwrap();
    let cleared = until(Duration::from_secs(20), || {
        server.stalled_partitions().is_empty()
    })
    .await;
    assert!(cleared, "still stalled: {:?}", server.stalled_partitions());
    stop.store(true, Ordering::SeqCst);
    member.join().unwrap();
    server.shutdown().await;
}
