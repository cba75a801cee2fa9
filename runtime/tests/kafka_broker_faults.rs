//! Broker faults: the broker is killed while a client and a server run. Calls fail with
//! UNAVAILABLE or DEADLINE_EXCEEDED within their timeout (nothing hangs); when a broker is
//! back on the same address, the same client and server recover without a restart.
//!
//! tansu's in-memory storage loses every topic with the process (its other engines are
//! PostgreSQL and S3), so the restarted broker is empty: the test re-creates the contract's
//! topics the way a deploy job would (`ensure_topics` / `axion-gen topics`).

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::time::{Duration, Instant};

use axion_runtime::codes;
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{CreateProjectRequest, GRAPH_SERVICE_CONTRACT};
use support::broker::Broker;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const BEFORE: usize = 40;

fn cfg(broker: &Broker, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(CALL_TIMEOUT.as_millis() as i64)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

fn create(name: &str) -> CreateProjectRequest {
    CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_fail_fast_while_the_broker_is_down_and_recover_when_it_returns() {
    let mut broker = Broker::start();
    let config = cfg(&broker, "broker-faults");
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let kafka = KafkaClient::connect(
        &cfg(&broker, "broker-faults-caller"),
        &[&GRAPH_SERVICE_CONTRACT],
    )
    .await
    .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    // Enough replies that a client waiting for the old reply offsets to come back on the
    // re-created topic would not recover within the bounded wait below.
    for n in 0..BEFORE {
        client
            .create_project(&create(&format!("before-{n}")))
            .await
            .unwrap();
    }

    broker.stop();
    // Concurrent calls while the broker is gone: each fails with a clear code, in bounded time.
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let result = client.create_project(&create(&format!("down-{n}"))).await;
                (result, t.elapsed())
            })
        })
        .collect();
    let mut codes_seen = Vec::new();
    for call in calls {
        // Generous bound: the call timeout plus slack for a loaded machine; never a hang.
        let (result, took) = tokio::time::timeout(CALL_TIMEOUT * 4, call)
            .await
            .expect("a call hung while the broker was down")
            .unwrap();
        let e = result.expect_err("no broker, no answer");
        assert!(
            e.is(codes::UNAVAILABLE) || e.is(codes::DEADLINE_EXCEEDED),
            "unclear error: {e}"
        );
        // The README promises "within their timeout": allow scheduling slack only.
        assert!(
            took <= CALL_TIMEOUT + Duration::from_millis(1500),
            "took {took:?}, more than the call timeout {CALL_TIMEOUT:?}"
        );
        codes_seen.push(e.code().unwrap_or_default().to_owned());
    }
    eprintln!(
        "broker down: 4 calls failed with {codes_seen:?} after {:?}",
        started.elapsed()
    );

    broker.restart();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    // The same client and server (not restarted) serve again within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempts = 0;
    let mut last = None;
    while Instant::now() < deadline {
        attempts += 1;
        match client
            .create_project(&create(&format!("after-{attempts}")))
            .await
        {
            Ok(reply) => {
                assert_eq!(reply.project.unwrap().name, format!("after-{attempts}"));
                last = None;
                break;
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let recovered_after = started.elapsed();
    assert!(
        last.is_none(),
        "no recovery after the broker came back: {last:?}"
    );
    assert!(
        attempts < BEFORE / 2,
        "recovered only after {attempts} calls: the reply partition was not rewound"
    );
    eprintln!(
        "broker back: recovered after {attempts} attempt(s), {recovered_after:?} after the stop"
    );
    // And it keeps working: a few more calls in a row.
    for n in 0..5 {
        client
            .create_project(&create(&format!("steady-{n}")))
            .await
            .unwrap();
    }
    server.shutdown().await;
}

/// A server started while its brokers are down starts anyway (after at most its request
/// timeout, with a warning) and serves once they are up; only a refused login or handshake
/// fails a start (`runtime/tests/kafka_tls.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_the_broker_is_down_serves_once_it_is_up() {
    let mut broker = Broker::start();
    let config = cfg(&broker, "started-while-down");
    broker.stop();
    let started = Instant::now();
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph::Graph::default()))
        .await
        .expect("brokers that are down do not fail a start");
    assert!(
        started.elapsed() < CALL_TIMEOUT + Duration::from_secs(3),
        "the start waited {:?}",
        started.elapsed()
    );
    broker.restart();
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    assert!(
        server.wait_assigned(Duration::from_secs(60)).await,
        "the server joined its group once the broker was up"
    );
    let kafka = KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let created = client.create_project(&create("after-the-outage")).await;
    assert_eq!(created.unwrap().project.unwrap().name, "after-the-outage");
    server.shutdown().await;
}
