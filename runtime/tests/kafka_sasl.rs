//! SASL/SCRAM authenticated against a real broker: the patched tansu with `--authentication`
//! and SCRAM users (`vendor/tansu/AXION-PATCH.md`). A Rust server and client that log in with
//! SCRAM-SHA-512 (the stack's default) serve and answer a call; SCRAM-SHA-256 logs in too; a
//! wrong password is `UNAUTHENTICATED` at once (well within the 5 s request timeout), and no
//! error shows the password. Over TLS: `runtime/tests/kafka_tls.rs`.

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
use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaConfig, KafkaServer, SaslMechanism, Secret,
};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{CreateProjectRequest, GRAPH_SERVICE_CONTRACT};
use support::broker::Broker;

const PASSWORD: &str = "scram-Pa55-4e1b-never-print-me";

fn config(broker: &Broker, mechanism: SaslMechanism, password: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("sasl")
        .sasl(mechanism, "svc-graph", Secret::new(password))
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logs_in_on_a_broker_that_requires_it_and_a_wrong_password_gets_nothing() {
    let broker = Broker::start_with_users(&[&format!("svc-graph:{PASSWORD}")]);
    let good = config(&broker, SaslMechanism::ScramSha512, PASSWORD);
    ensure_topics(&good, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect("an authenticated admin client creates the topics");
    let server = KafkaServer::start(&good, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(
        server.wait_assigned(Duration::from_secs(30)).await,
        "an authenticated server joins its group"
    );
    let kafka = KafkaClient::connect(&good, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let created = client
        .create_project(&CreateProjectRequest {
            name: "over-scram".into(),
            ..Default::default()
        })
        .await
        .expect("a call over SCRAM-SHA-512 is answered");
    assert_eq!(created.project.unwrap().name, "over-scram");

    let sha256 = config(&broker, SaslMechanism::ScramSha256, PASSWORD);
    KafkaClient::connect(&sha256, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect("SCRAM-SHA-256 logs in too");

    // A wrong password: refused by the broker, and said so at once.
    let bad = config(&broker, SaslMechanism::ScramSha512, "not-the-password");
    let started = Instant::now();
    let e = KafkaClient::connect(&bad, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect_err("no client without logging in");
    let connect_took = started.elapsed();
    let started = Instant::now();
    let e2 = ensure_topics(&bad, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect_err("no admin call without logging in");
    let admin_took = started.elapsed();
    for (e, took) in [(&e, connect_took), (&e2, admin_took)] {
        assert!(e.is(codes::UNAUTHENTICATED), "{e:?}");
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("svc-graph") && shown.contains("SCRAM-SHA-512"),
            "{shown}"
        );
        assert!(
            !shown.contains("not-the-password") && !shown.contains(PASSWORD),
            "{shown}"
        );
        assert!(
            took < Duration::from_secs(4),
            "refused after {took:?}: a timeout, not the refusal"
        );
    }
    server.shutdown().await;
}
