//! SASL/SCRAM over TLS on a real broker: the patched tansu with `--authentication` and
//! `--cert`/`--key` (`vendor/tansu/AXION-PATCH.md`), certificates from a test CA made with the
//! `openssl` command line. A Rust server and client, a NestJS client and a NestJS server
//! (kafkajs) all log in with SCRAM-SHA-512 over TLS, trusting the CA through
//! `KAFKA_SSL_CA_LOCATION`. A client trusting another CA is refused at the handshake, and a
//! wrong password is `UNAUTHENTICATED` at once: both fail within seconds, long before their
//! 30 s request timeout, and no error shows the password.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod nest;
    pub mod tls;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::path::Path;
use std::time::{Duration, Instant};

use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaConfig, KafkaServer, SaslMechanism, Secret,
};
use axion_runtime::{codes, RpcError};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{CreateProjectRequest, GRAPH_SERVICE_CONTRACT};
use support::broker::{Broker, Options};
use support::tls::TestPki;

const USER: &str = "svc-graph";
const PASSWORD: &str = "tls-Pa55-9c1d-never-print-me";
/// Long, so that a failure within seconds is the refusal itself, not a timeout.
const REQUEST_TIMEOUT_MS: i64 = 30_000;

fn config(broker: &Broker, ca: &Path, password: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("tls")
        .sasl(SaslMechanism::ScramSha512, USER, Secret::new(password))
        .ssl(true)
        .ssl_ca_location(ca)
        .fetch_wait_ms(5)
        .request_timeout_ms(REQUEST_TIMEOUT_MS)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

fn secure_broker(pki: &TestPki) -> Broker {
    let user = format!("{USER}:{PASSWORD}");
    Broker::start_with(&Options {
        users: &[&user],
        tls: Some((&pki.cert, &pki.key)),
    })
}

/// The NestJS peer's environment: the stack's variables, as a deployment sets them.
fn nest_env(ca: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_SASL_USERNAME", USER.to_owned()),
        ("KAFKA_SASL_PASSWORD", PASSWORD.to_owned()),
        ("KAFKA_SASL_MECHANISM", "scram-sha-512".to_owned()),
        ("KAFKA_SSL", "true".to_owned()),
        ("KAFKA_SSL_CA_LOCATION", ca.display().to_string()),
    ]
}

fn create(name: &str) -> CreateProjectRequest {
    CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_nest_peers_log_in_with_scram_over_tls_trusting_a_test_ca() {
    let pki = TestPki::new();
    let broker = secure_broker(&pki);
    let good = config(&broker, &pki.ca, PASSWORD);
    ensure_topics(&good, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect("an admin client logs in over TLS and creates the topics");
    let server = KafkaServer::start(&good, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(
        server.wait_assigned(Duration::from_secs(30)).await,
        "a server over SCRAM + TLS joins its group"
    );
    let kafka = KafkaClient::connect(&good, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let created = client
        .create_project(&create("rust-over-tls"))
        .await
        .expect("a Rust call over SCRAM + TLS is answered");
    assert_eq!(created.project.unwrap().name, "rust-over-tls");

    // A NestJS client (kafkajs: sasl scram-sha-512, ssl.ca) calls the Rust server.
    let address = broker.address();
    let env = nest_env(&pki.ca);
    let (lines, status) = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        support::nest::run_client_with(
            &address,
            &["load", "6", "2", "nest-over-tls-"],
            "tls-nest-caller",
            Duration::from_secs(90),
            &env,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        status,
        Some(0),
        "the NestJS client over TLS failed: {lines:?}"
    );
    let answered = lines.iter().filter(|l| l["ok"] == true).count();
    assert_eq!(answered, 6, "{lines:?}");
    server.shutdown().await;

    // A NestJS server over SCRAM + TLS answers the Rust client.
    let address = broker.address();
    let env = nest_env(&pki.ca);
    let _nest = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        support::nest::server_with(&address, "graph-service", &env)
    })
    .await
    .unwrap();
    let from_nest = client
        .create_project(&create("nest-server-over-tls"))
        .await
        .expect("the NestJS server over SCRAM + TLS answers");
    assert_eq!(from_nest.project.unwrap().name, "nest-server-over-tls");
}

/// Asserts a refusal: `code`, within seconds, naming `hint`, never showing a password.
fn assert_refused(
    what: &str,
    result: Result<(), RpcError>,
    started: Instant,
    code: &str,
    hint: &str,
) {
    let e = result.expect_err(what);
    eprintln!("{what}: {e}");
    let shown = format!("{e} {e:?}");
    assert!(e.is(code), "{what}: {code} expected, got {shown}");
    assert!(shown.contains(hint), "{what}: {shown}");
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("not-the-password"),
        "{what}: {shown}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what}: refused after {:?}, not at once",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_and_a_wrong_password_are_refused_at_once() {
    let pki = TestPki::new();
    let broker = secure_broker(&pki);

    // The broker's certificate is not signed by the CA this client trusts.
    let untrusted = config(&broker, &pki.other_ca, PASSWORD);
    let started = Instant::now();
    let connected = KafkaClient::connect(&untrusted, &[&GRAPH_SERVICE_CONTRACT]).await;
    assert_refused(
        "a client trusting another CA",
        connected.map(drop),
        started,
        codes::UNAVAILABLE,
        "TLS",
    );

    // The right CA, a wrong password: every entry point says UNAUTHENTICATED.
    let bad = config(&broker, &pki.ca, "not-the-password");
    let started = Instant::now();
    let connected = KafkaClient::connect(&bad, &[&GRAPH_SERVICE_CONTRACT]).await;
    assert_refused(
        "a client with a wrong password",
        connected.map(drop),
        started,
        codes::UNAUTHENTICATED,
        USER,
    );
    let started = Instant::now();
    let created = ensure_topics(&bad, &[&GRAPH_SERVICE_CONTRACT]).await;
    assert_refused(
        "an admin call with a wrong password",
        created.map(drop),
        started,
        codes::UNAUTHENTICATED,
        USER,
    );
    let started = Instant::now();
    let served = KafkaServer::start(&bad, GraphServiceServer::new(graph::Graph::default())).await;
    assert_refused(
        "a server with a wrong password",
        served.map(drop),
        started,
        codes::UNAUTHENTICATED,
        USER,
    );
}
