//! librdkafka properties passed through `KAFKA_LIBRDKAFKA` reach every client the runtime
//! creates (here: `debug` turns on librdkafka's own debug records, which it otherwise never
//! writes), while a secret passed the same way never shows, even in librdkafka's dump of its
//! configuration.

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

use std::collections::HashMap;

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig};
use contracts::axion::graph::v1::GRAPH_SERVICE_CONTRACT;
use support::broker::Broker;
use support::capture::{Capture, Captured};

const KEY_PASSWORD: &str = "k3y-pa55-9d1e-never-print-me";

fn from_env(vars: &[(&str, String)]) -> KafkaConfig {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    KafkaConfig::from_lookup(|k| map.get(k).cloned()).unwrap()
}

fn from_librdkafka(e: &Captured) -> bool {
    e.target == "librdkafka" || e.field("log.target") == Some("librdkafka")
}

/// librdkafka debug records captured so far.
fn debug_records(capture: &Capture) -> Vec<String> {
    capture
        .events()
        .iter()
        .filter(|e| from_librdkafka(e) && e.level == tracing::Level::DEBUG)
        .map(Captured::text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_properties_reach_every_client_and_secrets_stay_hidden() {
    let capture = Capture::install();
    let broker = Broker::start();
    let address = broker.address();

    let plain = from_env(&[("KAFKA_BROKERS", address.clone())]);
    ensure_topics(&plain, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let kafka = KafkaClient::connect(&plain, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    drop(kafka);
    assert!(
        debug_records(&capture).is_empty(),
        "without `debug` librdkafka writes no debug records: {:#?}",
        debug_records(&capture)
    );

    let passed = from_env(&[
        ("KAFKA_BROKERS", address.clone()),
        (
            "KAFKA_LIBRDKAFKA",
            format!(
                "debug=broker,conf; socket.keepalive.enable=true; ssl.key.password={KEY_PASSWORD}"
            ),
        ),
    ]);
    assert!(!format!("{passed:?}").contains(KEY_PASSWORD));
    let kafka = KafkaClient::connect(&passed, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    drop(kafka);
    let debug = debug_records(&capture);
    assert!(
        debug.iter().any(|l| l.contains("socket.keepalive.enable")),
        "librdkafka's configuration dump (debug=conf) shows the passed property: {debug:#?}"
    );
    assert!(
        debug.iter().any(|l| l.contains("ssl.key.password")),
        "the dump lists the secret's name, so the check below covers it: {debug:#?}"
    );
    for e in capture.events() {
        assert!(
            !e.text().contains(KEY_PASSWORD),
            "the secret leaked: {}",
            e.text()
        );
    }
    eprintln!(
        "passthrough: {} librdkafka debug records, no secret",
        debug.len()
    );
}

#[test]
fn a_property_the_runtime_owns_or_librdkafka_refuses_fails_the_configuration() {
    for (value, expected) in [
        ("enable.auto.commit=true", "set by the runtime"),
        ("group.id=other", "KAFKA_GROUP_ID"),
        ("no.such.property=1", "No such configuration property"),
        (
            "socket.keepalive.enable=sometimes",
            "socket.keepalive.enable",
        ),
    ] {
        let map: HashMap<&str, &str> = [("KAFKA_LIBRDKAFKA", value)].into_iter().collect();
        let e = KafkaConfig::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(e.name, "KAFKA_LIBRDKAFKA", "{e}");
        assert!(e.problem.contains(expected), "{value}: {e}");
    }
    let e = KafkaConfig::builder()
        .librdkafka("acks", "1")
        .build()
        .unwrap_err();
    assert_eq!(e.name, "librdkafka", "{e}");
}
