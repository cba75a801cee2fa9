//! Dead letters a user can act on, on a real broker: events whose handler keeps failing are
//! listed with their reason, attempts, key and headers, and the selected ones re-driven to
//! their topic reach the (now healthy) handler with their headers and a re-drive marker.
//!
//! Records no reader expects: header keys that are not UTF-8 (Kafka header keys are bytes;
//! rdkafka's own reader panics on them, which stopped the consumer thread and the client's
//! reply reader), and a request without any reply address (never run as an event); and
//! dead-letter copies the bus refuses.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
    #[allow(dead_code)]
    pub mod capture;
    #[allow(dead_code)]
    pub mod raw;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axion_runtime::codes;
use axion_runtime::kafka::dead_letters::{self, DLQ_REDRIVEN_FROM};
use axion_runtime::kafka::dlq::{DLQ_ERROR, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC};
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaServer, RetryPolicy};
use axion_runtime::kafka::{KafkaConfig, CORRELATION_ID, NEST_ERR, REPLY_PARTITION, REPLY_TOPIC};
use axion_runtime::{CallOptions, Handler, Incoming, RawReplies, RpcError, ServiceContract};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{CreateProjectRequest, GRAPH_SERVICE_REPLY_TOPICS};
use contracts::axion::graph::v1::{
    Project, ProjectCreatedEvent, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use rdkafka::Message as _;
use support::broker::{config, Broker};
use support::capture::Capture;
use support::raw;

const MAX_BYTES: usize = 4096;
const PARTITIONS: i32 = 2;

/// A server or caller of the hostile-record tests: small payload limit, two partitions.
fn cfg(broker: &Broker, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(PARTITIONS as i64)
        .max_message_bytes(MAX_BYTES as i64)
        .build()
        .unwrap()
}

/// Project-created events: fail with UNAVAILABLE while `failing`, else recorded as
/// (name, x-tenant, re-driven-from).
#[derive(Clone, Default)]
struct Flaky {
    failing: Arc<AtomicBool>,
    handled: Arc<Mutex<Vec<Handled>>>,
}

/// An event's project name, its `x-tenant` header and its re-drive marker.
type Handled = (String, Option<String>, Option<String>);

impl Handler for Flaky {
    fn contract(&self) -> &'static ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        use axion_runtime::futures::StreamExt as _;
        let me = self.clone();
        let outcome = async move {
            if me.failing.load(Ordering::SeqCst) {
                return Err(RpcError::unavailable("the database is down"));
            }
            let event: ProjectCreatedEvent = axion_runtime::json::decode(&incoming.payload)?;
            let header = |name: &str| incoming.headers.get_str(name).map(str::to_owned);
            me.handled.lock().unwrap().push((
                event.project.map(|p| p.name).unwrap_or_default(),
                header("x-tenant"),
                header(DLQ_REDRIVEN_FROM),
            ));
            Ok(())
        };
        // An event's stream yields nothing on success, its error on failure.
        Box::pin(
            axion_runtime::futures::stream::once(outcome)
                .filter_map(|r| async move { r.err().map(Err) }),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_reasons_and_selected_ones_re_driven() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-dead-letters");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let handler = Flaky::default();
    handler.failing.store(true, Ordering::SeqCst);
    let server = KafkaServer::builder(&cfg, handler.clone())
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        })
        .start()
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    for name in ["alpha", "beta", "gamma"] {
        let event = ProjectCreatedEvent {
            project: Some(Project {
                name: name.into(),
                ..Default::default()
            }),
        };
        let options = CallOptions::new()
            .key(name)
            .header("x-tenant", format!("tenant-{name}"));
        client.project_created_with(&event, options).await.unwrap();
    }

    let pattern = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = dead_letters::list(&cfg, pattern, 100).await.unwrap();
        if letters.len() >= 3 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 3, "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter.reason, "handler-failed", "{letter:?}");
        assert_eq!(letter.attempts, 2, "{letter:?}");
        assert!(letter.error.contains("the database is down"), "{letter:?}");
        assert_eq!(letter.origin_topic, pattern);
        assert!(letter.origin.is_some());
        let name = String::from_utf8(letter.key.clone().unwrap()).unwrap();
        assert_eq!(
            letter.headers.get_str("x-tenant"),
            Some(format!("tenant-{name}").as_str()),
            "the original headers are kept: {letter:?}"
        );
        assert!(!letter
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("axion-dlq-")));
    }
    assert_eq!(
        dead_letters::list(&cfg, pattern, 2).await.unwrap().len(),
        2,
        "the limit holds"
    );

    // The database is back: re-drive two of the three.
    handler.failing.store(false, Ordering::SeqCst);
    let key = |l: &dead_letters::DeadLetter| String::from_utf8(l.key.clone().unwrap()).unwrap();
    let selected: Vec<_> = letters
        .iter()
        .filter(|l| key(l) != "beta")
        .cloned()
        .collect();
    assert_eq!(dead_letters::redrive(&cfg, &selected).await.unwrap(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while handler.handled.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut handled = handler.handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled.len(), 2, "{handled:?}");
    for ((name, tenant, from), letter) in handled.iter().zip(&selected) {
        assert_eq!(name, &key(letter));
        assert_eq!(tenant.as_deref(), Some(format!("tenant-{name}").as_str()));
        assert_eq!(
            from.as_deref(),
            Some(format!("{}/{}/{}", letter.topic, letter.partition, letter.offset).as_str())
        );
    }
    eprintln!(
        "dead letters: {} listed, {} re-driven and handled",
        letters.len(),
        handled.len()
    );
    server.shutdown().await;
}

/// A header key a Go or C producer may write: not UTF-8.
const FOREIGN_KEY: &[u8] = b"\xff\xfe-trace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_no_reader_expects_are_dead_lettered_byte_for_byte_and_serving_goes_on() {
    let broker = Broker::start();
    let address = broker.address();
    let config = cfg(&broker, "unreadable");
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let graph = std::sync::Arc::new(graph::Graph::default());
    let server = KafkaServer::start(&config, GraphServiceServer::from_arc(graph.clone()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    // Connected first: its reply reader starts at the end of the reply topics.
    let kafka = KafkaClient::connect(
        &cfg(&broker, "unreadable-caller"),
        &[&GRAPH_SERVICE_CONTRACT],
    )
    .await
    .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let create = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
    let event = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
    let reply_topic = GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT;
    let producer = raw::producer(&address);

    // A request with a foreign header key (and a null value): its bytes to the dead-letter
    // topic, an error reply to its caller.
    let request: Vec<(&[u8], Option<&[u8]>)> = vec![
        (FOREIGN_KEY, Some(b"\x01\x02")),
        (b"null-valued", None),
        (CORRELATION_ID.as_bytes(), Some(b"u-request")),
        (REPLY_TOPIC.as_bytes(), Some(reply_topic.as_bytes())),
        (REPLY_PARTITION.as_bytes(), Some(b"0")),
    ];
    let request_at = raw::send_raw(
        &producer,
        create,
        Some(0),
        &request,
        Some(br#"{"name":"unreadable"}"#),
    )
    .await;
    // An event with one.
    let foreign_event: Vec<(&[u8], Option<&[u8]>)> = vec![(b"\x80", Some(b"x")), (b"ok", None)];
    let event_at = raw::send_raw(&producer, event, Some(1), &foreign_event, Some(b"{}")).await;
    // A request with no reply address at all: NestJS would run it as an event.
    let headerless_at = raw::send(
        &producer,
        create,
        Some(1),
        &[],
        Some(br#"{"name":"headerless"}"#),
    )
    .await;
    // A reply nobody asked for, with a foreign key, on every partition of the reply topic the
    // client reads.
    for p in 0..PARTITIONS {
        raw::send_raw(
            &producer,
            reply_topic,
            Some(p),
            &[
                (FOREIGN_KEY, Some(b"1")),
                (CORRELATION_ID.as_bytes(), Some(b"0")),
            ],
            Some(b"{}"),
        )
        .await;
    }

    // The caller of the unreadable request hears of it.
    let replies = raw::read_settled(
        &address,
        reply_topic,
        PARTITIONS,
        PARTITIONS as usize + 1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let answer: Vec<_> = replies
        .iter()
        .filter(|m| raw::header(m, CORRELATION_ID).as_deref() == Some("u-request"))
        .collect();
    assert_eq!(answer.len(), 1, "one error reply to the unreadable request");
    let err = raw::header(answer[0], NEST_ERR).expect("kafka_nest-err");
    let e = RpcError::from_json(err.as_bytes());
    assert!(e.is(codes::INVALID_ARGUMENT), "{err}");
    assert!(err.contains("unreadable-record"), "{err}");

    // Dead letters keep every byte of the headers, in order, null values included.
    let letters = raw::read_settled(
        &address,
        &format!("{create}.dlq"),
        PARTITIONS,
        2,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_eq!(
        letters.len(),
        2,
        "the unreadable and the headerless request"
    );
    let at = |(partition, offset): (i32, i64)| {
        letters
            .iter()
            .find(|m| {
                raw::header(m, DLQ_PARTITION) == Some(partition.to_string())
                    && raw::header(m, DLQ_OFFSET) == Some(offset.to_string())
            })
            .unwrap_or_else(|| panic!("{partition}@{offset} not dead-lettered"))
    };
    let unreadable = at(request_at);
    assert_eq!(
        raw::header(unreadable, DLQ_REASON).as_deref(),
        Some("unreadable-record")
    );
    let kept = raw::headers(unreadable);
    let sent: Vec<(Vec<u8>, Option<Vec<u8>>)> = request
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        kept[..sent.len()],
        sent[..],
        "the original headers, exactly"
    );
    assert_eq!(unreadable.payload(), Some(&br#"{"name":"unreadable"}"#[..]));
    let headerless = at(headerless_at);
    assert_eq!(
        raw::header(headerless, DLQ_REASON).as_deref(),
        Some("missing-reply-address"),
        "a request pattern's record without a reply address is not an event"
    );
    let events = raw::read_settled(
        &address,
        &format!("{event}.dlq"),
        PARTITIONS,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        raw::header(&events[0], DLQ_OFFSET),
        Some(event_at.1.to_string())
    );
    assert_eq!(
        raw::header(&events[0], DLQ_REASON).as_deref(),
        Some("unreadable-record")
    );
    assert_eq!(
        raw::headers(&events[0])[..2],
        [
            (b"\x80".to_vec(), Some(b"x".to_vec())),
            (b"ok".to_vec(), None)
        ],
    );
    assert_eq!(
        graph.project_count(),
        0,
        "no handler ran: not for the unreadable request, not for the headerless one"
    );

    // Both loops still serve: the server answers, and the client's reply reader (which read
    // the foreign replies) routes the answer.
    let reply = client
        .create_project(&CreateProjectRequest {
            name: "after-foreign-bytes".into(),
            ..Default::default()
        })
        .await
        .expect("served after foreign records");
    assert_eq!(reply.project.unwrap().name, "after-foreign-bytes");
    assert!(server.failure().is_none() && kafka.failure().is_none());
    assert_eq!(server.problem(), None);
    for topic in [create, event] {
        let ends = raw::ends(&address, topic, PARTITIONS);
        let group = GRAPH_SERVICE_CONTRACT.server_group;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
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
    // Listed with its bytes, and re-driven with them: the copy in the topic again has every
    // header exactly as the foreign producer wrote it.
    let listed = dead_letters::list(&config, create, 10).await.unwrap();
    let letter = listed
        .iter()
        .find(|l| l.reason == "unreadable-record")
        .expect("listed");
    assert_eq!(letter.raw_headers.as_deref(), Some(&sent[..]));
    assert_eq!(
        dead_letters::redrive(&config, std::slice::from_ref(letter))
            .await
            .unwrap(),
        1
    );
    let again = raw::read_to_end(&address, create, PARTITIONS, Duration::from_secs(30))
        .into_iter()
        .find(|m| raw::header(m, DLQ_REDRIVEN_FROM).is_some())
        .expect("re-driven");
    let mut redriven = raw::headers(&again);
    redriven.retain(|(k, _)| k != DLQ_REDRIVEN_FROM.as_bytes());
    assert_eq!(redriven, sent, "re-driven byte for byte");
    server.shutdown().await;
}

/// The contract's topics except `missing` (tansu, like most clusters, creates no topic on a
/// produce).
async fn create_topics_except(config: &KafkaConfig, missing: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let specs = axion_runtime::kafka::topic_manifest(&[&GRAPH_SERVICE_CONTRACT], PARTITIONS, 1);
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", config.brokers.join(","))
        .create()
        .unwrap();
    let new: Vec<_> = specs
        .iter()
        .filter(|s| s.name != missing)
        .map(|s| NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

/// A dead-letter copy too large for the producer goes out without its payload; one the bus
/// refuses for good (no `.dlq` topic) parks its record — partition paused, offset
/// uncommitted, `/health` degraded, a metric — without holding the server's only handler
/// slot, and is written once the topic exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_copy_is_reduced_or_parked_without_holding_a_slot() {
    let capture = Capture::install();
    let broker = Broker::start();
    let address = broker.address();
    let event = GRAPH_SERVICE_PATTERNS::PROJECT_CREATED;
    let event_dlq = format!("{event}.dlq");
    let config = KafkaConfig::builder()
        .brokers([broker.address()])
        .client_id("refused-dlq")
        .fetch_wait_ms(5)
        .request_timeout_ms(5_000)
        .session_timeout_ms(6_000)
        .topic_partitions(PARTITIONS as i64)
        // One handler slot for the whole server: a write that held it would stop everything.
        .max_in_flight(1)
        // A missing topic is reported after 1 s instead of librdkafka's 30 s.
        .librdkafka("topic.metadata.propagation.max.ms", "1000")
        .build()
        .unwrap();
    let create_dlq = format!("{}.dlq", GRAPH_SERVICE_PATTERNS::CREATE_PROJECT);
    create_topics_except(&config, &event_dlq).await;
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph::Graph::default()))
        .await
        .unwrap();
    assert!(server.wait_assigned(Duration::from_secs(30)).await);
    let producer = raw::producer(&address);

    // Within the payload limit (1,000,000 here), but with a large header the whole copy is
    // over the server producer's message.max.bytes (2 × the limit + 64 KiB): the copy goes
    // without the payload.
    let huge = vec![b'x'; 990_000];
    let big_header = vec![b'h'; 1_100_000];
    let request_headers = [
        (CORRELATION_ID, &b"big-but-no-reply-partition"[..]),
        (REPLY_TOPIC, b"not allowed!"),
        ("x-big", &big_header[..]),
    ];
    let huge_at = raw::send(
        &producer,
        GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
        Some(0),
        &request_headers,
        Some(&huge),
    )
    .await;
    let letters = raw::read_all(
        &address,
        &create_dlq,
        PARTITIONS,
        1,
        Duration::from_secs(60),
    );
    assert_eq!(letters.len(), 1, "a reduced copy");
    let letter = &letters[0];
    assert_eq!(
        raw::header(letter, DLQ_REASON).as_deref(),
        Some("payload-too-large-for-dlq")
    );
    assert_eq!(raw::header(letter, DLQ_OFFSET), Some(huge_at.1.to_string()));
    assert_eq!(
        raw::header(letter, DLQ_TOPIC).as_deref(),
        Some(GRAPH_SERVICE_PATTERNS::CREATE_PROJECT)
    );
    let error = raw::header(letter, DLQ_ERROR).unwrap_or_default();
    assert!(
        error.contains("bad-reply-topic") && error.contains("refused"),
        "{error}"
    );
    assert_eq!(letter.payload(), None, "payload dropped");
    assert_eq!(
        raw::header_bytes(letter, CORRELATION_ID).as_deref(),
        Some(&b"big-but-no-reply-partition"[..]),
        "headers kept"
    );
    assert_eq!(raw::header_bytes(letter, "x-big"), Some(big_header));

    // An undecodable event whose dead-letter topic does not exist: parked.
    let parked_at = raw::send(&producer, event, Some(1), &[], Some(b"{{ not json")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.parked_partitions().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.parked_partitions(),
        vec![(event.to_owned(), parked_at.0, parked_at.1)]
    );
    let problem = server.problem().unwrap_or_default();
    assert!(problem.starts_with("degraded:"), "{problem}");
    let page = axion_runtime::metrics::global().render();
    assert!(
        page.lines()
            .any(|l| l.starts_with("axion_dead_letter_failures_total{") && l.contains(event)),
        "{page}"
    );
    assert!(
        capture
            .events()
            .iter()
            .any(|e| e.level == tracing::Level::ERROR
                && e.text().contains("dead-letter copy refused"))
    );

    // The only handler slot is free: requests are served meanwhile.
    let kafka = KafkaClient::connect(
        &cfg(&broker, "refused-dlq-caller"),
        &[&GRAPH_SERVICE_CONTRACT],
    )
    .await
    .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        client.create_project(&CreateProjectRequest {
            name: "while-parked".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("not stuck behind the parked record");
    assert_eq!(reply.unwrap().project.unwrap().name, "while-parked");
    let group = GRAPH_SERVICE_CONTRACT.server_group;
    let committed = raw::committed(&address, group, event, PARTITIONS);
    assert!(
        committed[parked_at.0 as usize] <= parked_at.1,
        "the parked record is not committed: {committed:?}"
    );

    // Once the topic exists, the record is written on its next turn (every 30 s).
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let letters = raw::read_all(&address, &event_dlq, PARTITIONS, 1, Duration::from_secs(90));
    assert_eq!(letters.len(), 1, "written once the topic exists");
    assert_eq!(
        raw::header(&letters[0], DLQ_REASON).as_deref(),
        Some("undecodable")
    );
    assert_eq!(
        raw::header(&letters[0], DLQ_OFFSET),
        Some(parked_at.1.to_string())
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (server.problem().is_some()
        || raw::committed(&address, group, event, PARTITIONS)
            != raw::ends(&address, event, PARTITIONS))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.problem(), None, "no longer degraded");
    assert_eq!(
        raw::committed(&address, group, event, PARTITIONS),
        raw::ends(&address, event, PARTITIONS),
        "committed once written"
    );
    server.shutdown().await;
}
