//! Rust client ↔ Rust server through a real broker (tansu on 127.0.0.1): send, emit, errors,
//! a server stream, a malformed payload, timeouts, a broker that is down.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
    #[allow(dead_code)]
    pub mod raw;
}
#[path = "../../examples/support/graph.rs"]
mod graph;

use std::time::{Duration, Instant};

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::dlq::DLQ_REASON;
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use axion_runtime::{
    codes, Call, CallOptions, Emit, Handler, Incoming, RawReplies, ServiceContract, Transport as _,
};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, DeleteProjectRequest, GetProjectRequest, ListProjectsRequest,
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};
use rdkafka::Message as _;
use support::broker::{config, Broker};
use support::raw;

fn create(name: &str) -> CreateProjectRequest {
    CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_and_rust_server_over_kafka() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-rust");
    let created = ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    assert_eq!(
        created.len(),
        14,
        "5 request + 4 reply + 5 dead-letter topics: {created:?}"
    );
    assert!(ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap()
        .is_empty());

    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let service = graph::Graph::emitting_to(client.clone());
    let server = GraphServiceServer::new(service);
    let svc = server.service().clone();
    let handle = KafkaServer::start(&cfg, server).await.unwrap();
    assert_eq!(handle.group(), "graph-service-server");
    assert!(
        handle.wait_assigned(Duration::from_secs(20)).await,
        "server never got partitions"
    );

    let alpha = client
        .create_project(&create("alpha"))
        .await
        .unwrap()
        .project
        .unwrap();
    assert_eq!(alpha.name, "alpha");
    assert!(alpha.created_at.is_some());

    let dup = client.create_project(&create("alpha")).await.unwrap_err();
    assert!(dup.is(codes::ALREADY_EXISTS), "{dup:?}");
    assert_eq!(dup.message, "project alpha already exists");

    let missing = client
        .get_project(&GetProjectRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert!(missing.is(codes::NOT_FOUND), "{missing:?}");
    assert_eq!(
        client
            .get_project(&GetProjectRequest {
                id: alpha.id.clone()
            })
            .await
            .unwrap(),
        alpha
    );

    client.create_project(&create("beta")).await.unwrap();
    let names: Vec<String> = client
        .list_projects(&ListProjectsRequest::default())
        .await
        .unwrap()
        .map(|p| p.unwrap().name)
        .collect()
        .await;
    assert_eq!(names, vec!["alpha", "beta"]);

    client
        .delete_project(&DeleteProjectRequest {
            id: alpha.id.clone(),
        })
        .await
        .unwrap();
    let names: Vec<String> = client
        .list_projects(&ListProjectsRequest::default())
        .await
        .unwrap()
        .map(|p| p.unwrap().name)
        .collect()
        .await;
    assert_eq!(
        names,
        vec!["beta"],
        "an empty-or-shorter stream ends cleanly"
    );

    // The service emitted ProjectCreated on each create and consumed its own events.
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.received.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: Vec<String> = svc
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.project.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(seen, vec!["alpha", "beta"]);

    // A malformed payload gets an error reply, and the server keeps serving.
    let raw = kafka
        .send(Call {
            pattern: GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
            reply_topic: GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT,
            payload: b"{\"name\": 42".to_vec(),
            key: None,
            headers: Default::default(),
            timeout: Duration::from_secs(10),
        })
        .await
        .unwrap();
    let replies: Vec<_> = raw.collect().await;
    assert_eq!(replies.len(), 1);
    let err = replies[0].clone().unwrap_err();
    assert!(err.is(codes::INVALID_ARGUMENT), "{err:?}");
    // A garbage event is dead-lettered (consumed, copied with its reason), not fatal.
    kafka
        .emit(Emit {
            pattern: GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
            payload: b"\x00garbage".to_vec(),
            key: None,
            headers: Default::default(),
        })
        .await
        .unwrap();
    let dlq = format!("{}.dlq", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED);
    let dead = raw::read_settled(
        &broker.address(),
        &dlq,
        3,
        1,
        Duration::from_secs(20),
        Duration::from_millis(500),
    );
    assert_eq!(dead.len(), 1, "one dead-letter copy of the garbage event");
    assert_eq!(dead[0].payload(), Some(&b"\x00garbage"[..]));
    assert_eq!(
        raw::header(&dead[0], DLQ_REASON).as_deref(),
        Some("undecodable")
    );
    assert!(client.create_project(&create("gamma")).await.is_ok());

    handle.shutdown().await;
}

/// The generated dispatcher, recording each request's key and `x-tenant` header, and adding
/// headers to every reply: one of its own, and a forged correlation id the transport must
/// not send (the caller would never match the reply).
struct Stamping<H> {
    inner: H,
    /// Key and `x-tenant` of each request.
    seen: std::sync::Mutex<Vec<KeyAndTenant>>,
}

type KeyAndTenant = (Option<Vec<u8>>, Option<Vec<u8>>);

impl<H: Handler> Handler for Stamping<H> {
    fn contract(&self) -> &'static ServiceContract {
        self.inner.contract()
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        assert!(
            incoming.partition.is_some()
                && incoming.offset.is_some()
                && incoming.timestamp.is_some(),
            "where it was read: {incoming:?}"
        );
        self.seen.lock().unwrap().push((
            incoming.key.clone(),
            incoming.headers.get("x-tenant").map(<[u8]>::to_vec),
        ));
        Box::pin(self.inner.handle(incoming).map(|item| {
            item.map(|mut reply| {
                reply.headers.append("x-served-by", "stamping");
                reply.headers.append("kafka_correlationId", "forged");
                reply
            })
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_and_reply_headers_travel_over_kafka() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-rust-options");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let server = std::sync::Arc::new(Stamping {
        inner: GraphServiceServer::new(graph::Graph::emitting_to(client.clone())),
        seen: Default::default(),
    });
    let handle = KafkaServer::start(&cfg, server.clone()).await.unwrap();
    assert!(handle.wait_assigned(Duration::from_secs(20)).await);

    let options = CallOptions::new().key("k-1").header("x-tenant", "acme");
    let reply = client
        .create_project_with(&create("keyed"), options)
        .await
        .unwrap();
    assert_eq!(reply.headers().get_str("x-served-by"), Some("stamping"));
    let project = reply.into_inner().project.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        (Some(b"k-1".to_vec()), Some(b"acme".to_vec())),
        "{seen:?}"
    );

    // The example keys ProjectCreated by project id (one project's events in order).
    let events = raw::read_all(
        &broker.address(),
        GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
        3,
        1,
        Duration::from_secs(15),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key(), Some(project.id.as_bytes()));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_server_times_out() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-timeout");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client()).with_timeout(Duration::from_millis(1500));
    let started = Instant::now();
    let err = client.create_project(&create("lonely")).await.unwrap_err();
    assert!(err.is(codes::DEADLINE_EXCEEDED), "{err:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = KafkaConfig::builder()
        .brokers([format!("127.0.0.1:{port}")])
        .request_timeout_ms(2000)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap_err();
    assert!(err.is(codes::UNAVAILABLE), "{err:?}");
    let err = ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap_err();
    assert!(err.is(codes::UNAVAILABLE), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
