//! The SASL password never shows: not in logs (captured at TRACE, including librdkafka's log
//! records), not in `Debug` output of the config types, clients and handles, not in error
//! messages (bad configuration, a broker that refuses or cannot be reached).

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod capture;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::collections::HashMap;
use std::time::Duration;

use axion_runtime::codes;
use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaConfig, KafkaServer, SaslMechanism, Secret,
};
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::GRAPH_SERVICE_CONTRACT;
use support::broker::Broker;
use support::capture::Capture;

const PASSWORD: &str = "Pa55-w0rd-7f3a9c-never-print-me";

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sasl_password_never_appears_in_logs_debug_output_or_errors() {
    let capture = Capture::install();
    tracing::trace!(probe = "capture-works", "trace probe");
    let mut seen: Vec<String> = Vec::new();

    // Configuration: Debug of every type that holds it, and errors of bad configurations.
    let config = KafkaConfig::from_lookup(lookup(&[
        ("KAFKA_BROKERS", "127.0.0.1:1"),
        ("KAFKA_SASL_USERNAME", "svc-graph"),
        ("KAFKA_SASL_PASSWORD", PASSWORD),
        ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
    ]))
    .unwrap();
    assert_eq!(config.sasl.as_ref().unwrap().password.expose(), PASSWORD);
    seen.push(format!("{config:?}"));
    seen.push(format!("{config:#?}"));
    seen.push(format!("{:?}", config.sasl));
    seen.push(format!("{:?}", Secret::new(PASSWORD)));
    let builder = KafkaConfig::builder().sasl(SaslMechanism::Plain, "svc", Secret::new(PASSWORD));
    seen.push(format!("{builder:?}"));
    for bad in [
        vec![("KAFKA_SASL_PASSWORD", PASSWORD)],
        vec![
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", PASSWORD),
            ("KAFKA_SASL_MECHANISM", "md5"),
        ],
        vec![
            ("KAFKA_SASL_USERNAME", ""),
            ("KAFKA_SASL_PASSWORD", PASSWORD),
            ("KAFKA_BROKERS", "nohost"),
        ],
    ] {
        let e = KafkaConfig::from_lookup(lookup(&bad)).unwrap_err();
        seen.push(e.to_string());
        seen.push(format!("{e:?}"));
    }
    let e = KafkaConfig::builder()
        .sasl(SaslMechanism::ScramSha256, "", Secret::new(PASSWORD))
        .build()
        .unwrap_err();
    seen.push(format!("{e} {e:?}"));

    // A broker that is not there, with SASL on: every error and log line.
    let nowhere = KafkaConfig {
        request_timeout: Duration::from_secs(3),
        ..config.clone()
    };
    let e = KafkaClient::connect(&nowhere, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap_err();
    seen.push(format!("{e} {e:?}"));
    let e = ensure_topics(&nowhere, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap_err();
    seen.push(format!("{e} {e:?}"));

    // A real broker, reached with SASL credentials. tansu without `--authentication` refuses
    // every SASL handshake ("Unsupported SASL mechanism"): each entry point says
    // UNAUTHENTICATED at once, naming the user, and nothing on the way shows the password.
    let broker = Broker::start();
    let with_sasl = KafkaConfig {
        brokers: vec![broker.address()],
        request_timeout: Duration::from_secs(5),
        ..config.clone()
    };
    let e = ensure_topics(&with_sasl, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap_err();
    assert!(e.is(codes::UNAUTHENTICATED), "{e:?}");
    seen.push(format!("{e} {e:?}"));
    let e = KafkaServer::start(&with_sasl, GraphServiceServer::new(graph::Graph::default()))
        .await
        .expect_err("a server started without authenticating");
    assert!(e.is(codes::UNAUTHENTICATED), "{e:?}");
    seen.push(format!("{e} {e:?}"));
    let e = KafkaClient::connect(&with_sasl, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .expect_err("a client connected without authenticating");
    assert!(e.is(codes::UNAUTHENTICATED), "{e:?}");
    seen.push(format!("{e} {e:?}"));

    let logs: Vec<String> = capture.events().iter().map(|e| e.text()).collect();
    assert!(
        logs.iter().any(|l| l.contains("capture-works")),
        "the capture sees TRACE events"
    );
    let librdkafka: Vec<String> = capture
        .events()
        .iter()
        // A `log` record arrives as a tracing event of target `log`, its own in `log.target`.
        .filter(|e| e.target == "librdkafka" || e.field("log.target") == Some("librdkafka"))
        .map(|e| e.text())
        .collect();
    assert!(
        !librdkafka.is_empty(),
        "librdkafka's own log records are captured too (so the check covers them)"
    );
    for text in seen.iter().chain(&logs) {
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
    assert!(
        seen.iter().any(|t| t.contains("svc-graph")),
        "the checked output really shows the SASL settings (user name)"
    );
    eprintln!(
        "secrets: {} outputs and {} log events ({} from librdkafka) checked, no password",
        seen.len(),
        logs.len(),
        librdkafka.len()
    );
}
