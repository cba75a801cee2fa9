//! Poison messages on a real broker: payloads that do not decode, a wrong content type,
//! missing or garbage reply headers, an oversized message. A request with a usable reply
//! address gets an INVALID_ARGUMENT error reply (NestJS error shape); an event, or a request
//! whose reply address is unusable, is copied to `<pattern>.dlq` with the reason in headers.
//! Each is logged exactly once, the offset moves on and a valid call right after succeeds.

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
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::collections::BTreeMap;
use std::time::Duration;

use axion_runtime::kafka::dlq::{DLQ_ERROR, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC};
use axion_runtime::kafka::{
    ensure_topics, KafkaClient, KafkaConfig, KafkaServer, CORRELATION_ID, NEST_ERR,
    NEST_IS_DISPOSED, REPLY_PARTITION, REPLY_TOPIC,
};
use axion_runtime::{codes, RpcError};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
    GRAPH_SERVICE_REPLY_TOPICS,
};
use rdkafka::Message as _;
use support::broker::Broker;
use support::capture::Capture;
use support::raw;

const MAX_BYTES: usize = 4096;
const PARTITIONS: i32 = 2;

fn cfg(broker: &Broker, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(PARTITIONS as i64)
        .max_message_bytes(MAX_BYTES as i64)
        // Allowed, but never created: replies to it are undeliverable.
        .allowed_reply_topics(["axion.nowhere.reply"])
        .build()
        .unwrap()
}

/// One poison case: what is sent, and where it must end up.
struct Case {
    name: &'static str,
    topic: &'static str,
    headers: Vec<(&'static str, Vec<u8>)>,
    payload: Vec<u8>,
    /// `Some(reason)`: an error reply whose `reason` detail (or message) says this;
    /// `None`: dead-lettered with `dlq_reason`.
    reply: bool,
    reason: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_get_an_error_reply_or_go_to_the_dead_letter_topic() {
    let capture = Capture::install();
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "poison");
    let created = ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    assert!(
        created.contains(&format!("{}.dlq", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED)),
        "ensure_topics creates the dead-letter topics: {created:?}"
    );
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);

    let create = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
    let event = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
    let reply_topic = GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT;
    let request_headers = |id: &str| {
        vec![
            (CORRELATION_ID, id.as_bytes().to_vec()),
            (REPLY_TOPIC, reply_topic.as_bytes().to_vec()),
            (REPLY_PARTITION, b"0".to_vec()),
        ]
    };
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_BYTES));
    let cases = vec![
        Case {
            name: "request-not-json",
            topic: create,
            headers: request_headers("p-not-json"),
            payload: b"\x00\x01 not json".to_vec(),
            reply: true,
            reason: "cannot decode",
        },
        Case {
            name: "request-wrong-shape",
            topic: create,
            headers: request_headers("p-wrong-shape"),
            payload: br#"{"name":{"nested":true},"labels":7}"#.to_vec(),
            reply: true,
            reason: "cannot decode",
        },
        Case {
            name: "request-wrong-content-type",
            topic: create,
            headers: [
                request_headers("p-content-type"),
                vec![("content-type", b"application/xml".to_vec())],
            ]
            .concat(),
            payload: b"<name>x</name>".to_vec(),
            reply: true,
            reason: "wrong-content-type",
        },
        Case {
            name: "request-oversized",
            topic: create,
            headers: request_headers("p-oversized"),
            payload: big.clone().into_bytes(),
            reply: true,
            reason: "oversized",
        },
        Case {
            name: "event-not-json",
            topic: event,
            headers: vec![("trace", b"keep-me".to_vec())],
            payload: b"{{{ not json".to_vec(),
            reply: false,
            reason: "undecodable",
        },
        Case {
            name: "event-oversized",
            topic: event,
            headers: vec![],
            payload: big.clone().into_bytes(),
            reply: false,
            reason: "oversized",
        },
        Case {
            name: "event-wrong-content-type",
            topic: event,
            headers: vec![("Content-Type", b"application/x-protobuf".to_vec())],
            payload: b"\x0a\x03abc".to_vec(),
            reply: false,
            reason: "wrong-content-type",
        },
        Case {
            name: "reply-topic-without-correlation-id",
            topic: create,
            headers: vec![(REPLY_TOPIC, reply_topic.as_bytes().to_vec())],
            payload: br#"{"name":"no-id"}"#.to_vec(),
            reply: false,
            reason: "missing-reply-address",
        },
        Case {
            name: "request-without-reply-topic",
            topic: create,
            headers: vec![(CORRELATION_ID, b"p-no-topic".to_vec())],
            payload: br#"{"name":"no-topic"}"#.to_vec(),
            reply: false,
            reason: "missing-reply-address",
        },
        Case {
            name: "request-garbage-correlation-id",
            topic: create,
            headers: vec![
                (CORRELATION_ID, b"\xff\xfe\x00".to_vec()),
                (REPLY_TOPIC, reply_topic.as_bytes().to_vec()),
            ],
            payload: br#"{"name":"bad-id"}"#.to_vec(),
            reply: false,
            reason: "bad-correlation-id",
        },
        Case {
            name: "request-garbage-reply-topic",
            topic: create,
            headers: vec![
                (CORRELATION_ID, b"p-bad-topic".to_vec()),
                (REPLY_TOPIC, b"no such/topic!".to_vec()),
            ],
            payload: br#"{"name":"bad-topic"}"#.to_vec(),
            reply: false,
            reason: "bad-reply-topic",
        },
        Case {
            name: "request-garbage-reply-partition",
            topic: create,
            headers: [
                request_headers("p-bad-partition")[..2].to_vec(),
                vec![(REPLY_PARTITION, b"minus one".to_vec())],
            ]
            .concat(),
            payload: br#"{"name":"bad-partition"}"#.to_vec(),
            reply: false,
            reason: "bad-reply-partition",
        },
        Case {
            name: "request-to-missing-reply-topic",
            topic: create,
            headers: vec![
                (CORRELATION_ID, b"p-missing-topic".to_vec()),
                (REPLY_TOPIC, b"axion.nowhere.reply".to_vec()),
                (REPLY_PARTITION, b"0".to_vec()),
            ],
            payload: br#"{"name":"missing-topic"}"#.to_vec(),
            reply: false,
            reason: "reply-undeliverable",
        },
        Case {
            name: "request-replying-into-an-event-topic",
            topic: create,
            headers: vec![
                (CORRELATION_ID, b"p-injected".to_vec()),
                (REPLY_TOPIC, event.as_bytes().to_vec()),
                (REPLY_PARTITION, b"0".to_vec()),
            ],
            payload: br#"{"name":"injected"}"#.to_vec(),
            reply: false,
            reason: "reply-topic-not-allowed",
        },
    ];

    let producer = raw::producer(&address);
    // Where each case landed: (topic, partition, offset) -> case.
    let mut sent = BTreeMap::new();
    for case in &cases {
        let headers: Vec<(&str, &[u8])> = case
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_slice()))
            .collect();
        let (partition, offset) =
            raw::send(&producer, case.topic, None, &headers, Some(&case.payload)).await;
        sent.insert((case.topic, partition, offset), case);
    }

    // Error replies: one per request case with a usable address, in the NestJS error shape.
    let want_replies = cases.iter().filter(|c| c.reply).count();
    let replies = raw::read_settled(
        &address,
        reply_topic,
        PARTITIONS,
        want_replies,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_eq!(
        replies.len(),
        want_replies,
        "one error reply per case, no more"
    );
    for case in cases.iter().filter(|c| c.reply) {
        let id = String::from_utf8(case.headers[0].1.clone()).unwrap();
        let matching: Vec<_> = replies
            .iter()
            .filter(|m| raw::header(m, CORRELATION_ID).as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(matching.len(), 1, "{}: one error reply", case.name);
        let reply = matching[0];
        assert_eq!(
            reply.partition(),
            0,
            "{}: replied to kafka_replyPartition",
            case.name
        );
        assert!(
            raw::header(reply, NEST_IS_DISPOSED).is_some(),
            "{}",
            case.name
        );
        let err = raw::header(reply, NEST_ERR).expect("kafka_nest-err");
        let json: serde_json::Value = serde_json::from_str(&err).expect("error object");
        assert_eq!(json["status"], "error", "{}: {err}", case.name);
        let e = RpcError::from_json(err.as_bytes());
        assert!(e.is(codes::INVALID_ARGUMENT), "{}: {err}", case.name);
        assert!(
            e.message.contains(case.reason)
                || json.get("reason").and_then(|r| r.as_str()) == Some(case.reason),
            "{}: {err}",
            case.name
        );
    }

    // Dead letters: payload and headers kept, the reason and origin added.
    for pattern in [create, event] {
        let expected: Vec<_> = sent
            .iter()
            .filter(|((topic, ..), case)| *topic == pattern && !case.reply)
            .collect();
        let dlq = format!("{pattern}.dlq");
        let letters = raw::read_settled(
            &address,
            &dlq,
            PARTITIONS,
            expected.len(),
            Duration::from_secs(60),
            Duration::from_secs(2),
        );
        assert_eq!(
            letters.len(),
            expected.len(),
            "{dlq}: one copy per poison message"
        );
        for ((topic, partition, offset), case) in expected {
            let letter = letters
                .iter()
                .find(|m| {
                    raw::header(m, DLQ_OFFSET) == Some(offset.to_string())
                        && raw::header(m, DLQ_PARTITION) == Some(partition.to_string())
                })
                .unwrap_or_else(|| panic!("{}: not dead-lettered", case.name));
            assert_eq!(
                raw::header_bytes(letter, DLQ_REASON),
                Some(case.reason.as_bytes().to_vec()),
                "{}",
                case.name
            );
            assert_eq!(
                raw::header(letter, DLQ_TOPIC).as_deref(),
                Some(*topic),
                "{}",
                case.name
            );
            assert!(
                !raw::header(letter, DLQ_ERROR)
                    .unwrap_or_default()
                    .is_empty(),
                "{}",
                case.name
            );
            // An oversized payload is never copied out of librdkafka's buffer (the memory
            // bound): its copy says where the original is.
            let payload = (case.reason != "oversized").then_some(case.payload.as_slice());
            assert_eq!(letter.payload(), payload, "{}: payload kept", case.name);
            for (key, value) in &case.headers {
                assert_eq!(
                    raw::header_bytes(letter, key).as_ref(),
                    Some(value),
                    "{}: header {key} kept byte for byte",
                    case.name
                );
            }
        }
    }

    // The server keeps serving: a valid call right after succeeds.
    let kafka = KafkaClient::connect(&cfg(&broker, "poison-caller"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let reply = client
        .create_project(&CreateProjectRequest {
            name: "after-poison".into(),
            ..Default::default()
        })
        .await
        .expect("valid call after poison");
    assert_eq!(reply.project.unwrap().name, "after-poison");

    // The offsets moved on past every poison message: all committed up to the end.
    for topic in [create, event] {
        let ends = raw::ends(&address, topic, PARTITIONS);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let group = GRAPH_SERVICE_CONTRACT.server_group;
        while raw::committed(&address, group, topic, PARTITIONS) != ends
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            raw::committed(&address, group, topic, PARTITIONS),
            ends,
            "{topic}: committed up to the end"
        );
    }

    // Logged once: exactly one warning per poison message, naming its offset.
    let events = capture.events();
    for ((topic, partition, offset), case) in &sent {
        let warnings: Vec<_> = events
            .iter()
            .filter(|e| {
                e.level == tracing::Level::WARN
                    && e.field("pattern") == Some(*topic)
                    && e.field("partition") == Some(partition.to_string().as_str())
                    && e.field("offset") == Some(offset.to_string().as_str())
            })
            .map(|e| e.text())
            .collect();
        assert_eq!(
            warnings.len(),
            1,
            "{}: logged once: {warnings:#?}",
            case.name
        );
    }
    server.shutdown().await;
    eprintln!(
        "poison: {} cases, {} error replies, {} dead letters",
        cases.len(),
        want_replies,
        cases.len() - want_replies
    );
}
