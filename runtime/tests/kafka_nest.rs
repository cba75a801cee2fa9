//! Drop-in peers: a real NestJS client (ts-proto types from the same protos) calls the Rust
//! server, and the Rust client calls a real NestJS server, through a real broker.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
    pub mod nest;
}
#[path = "../../examples/support/auth.rs"]
mod auth;
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaServer};
use axion_runtime::{
    codes, CallOptions, Handler, Incoming, RawReplies, ServiceContract,
    INTERNAL_SERVER_ERROR_MESSAGE,
};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    project, CreateProjectRequest, DeleteProjectRequest, GetProjectRequest, ListProjectsRequest,
    Project, ProjectCreatedEvent, ProjectStatus, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use support::broker::{config, Broker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_client_calls_the_rust_server() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-nest-client");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = GraphServiceServer::new(graph::Graph::default());
    let svc = server.service().clone();
    let handle = KafkaServer::start(&cfg, server).await.unwrap();
    assert!(handle.wait_assigned(Duration::from_secs(20)).await);

    let address = broker.address();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client(
            &address,
            &["scenario"],
            "nest-caller",
            Duration::from_secs(90),
        )
    })
    .await
    .unwrap();
    let done = lines
        .iter()
        .find(|l| l["done"] == true)
        .cloned()
        .unwrap_or_default();
    assert_eq!(status, Some(0), "NestJS scenario failed: {lines:#?}");
    assert_eq!(done["failed"], 0, "{lines:#?}");
    assert!(done["passed"].as_u64().unwrap_or(0) >= 7, "{lines:#?}");

    // The duplicate create surfaced on the Nest side as the RpcException-shaped object.
    let dup = lines
        .iter()
        .find(|l| l["step"] == "duplicate")
        .expect("duplicate step");
    assert_eq!(dup["error"]["code"], "ALREADY_EXISTS", "{dup}");
    assert_eq!(dup["error"]["status"], "error", "{dup}");

    // The event the Nest client emitted reached the Rust handler, every field kind decoded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while svc.received.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = svc.received.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let p = events[0].project.clone().expect("event carries a project");
    assert_full_project(&p);

    // A request (`send`) to the event pattern: refused with UNIMPLEMENTED, the handler not run
    // (NestJS itself would run it and reply with nothing: a default value for the caller).
    // The Nest caller listens on `<pattern>.reply`, which no contract creates for an event.
    let address = broker.address();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &address)
            .create()
            .unwrap();
    let event_reply = format!("{}.reply", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED);
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                &event_reply,
                1,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client(
            &address,
            &["send-raw", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED, "{}"],
            "nest-caller",
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, Some(1), "{lines:#?}");
    let refused = lines.last().cloned().unwrap_or_default();
    assert_eq!(refused["ok"], false, "{lines:#?}");
    assert_eq!(refused["error"]["code"], codes::UNIMPLEMENTED, "{lines:#?}");
    assert_eq!(
        svc.received.lock().unwrap().len(),
        1,
        "the event handler ran"
    );
    handle.shutdown().await;
}

/// A record as it arrived: payload, key, header `x-tenant`, header `axion-deadline`.
type Arrived = (String, Option<String>, Option<String>, Option<String>);

/// The generated dispatcher, recording the key and headers each record arrived with.
struct Recording<H> {
    inner: H,
    seen: std::sync::Mutex<Vec<Arrived>>,
}

impl<H: Handler> Handler for Recording<H> {
    fn contract(&self) -> &'static ServiceContract {
        self.inner.contract()
    }
    fn handle(&self, incoming: Incoming) -> RawReplies {
        let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
        self.seen.lock().unwrap().push((
            String::from_utf8_lossy(&incoming.payload).into_owned(),
            text(incoming.key.as_deref()),
            text(incoming.headers.get("x-tenant")),
            text(incoming.headers.get("axion-deadline")),
        ));
        self.inner.handle(incoming)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nest_callers_key_headers_and_deadline_reach_the_rust_handler() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-nest-context");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = GraphServiceServer::new(graph::Graph::default());
    let svc = server.service().clone();
    let recording = std::sync::Arc::new(Recording {
        inner: server,
        seen: Default::default(),
    });
    let handle = KafkaServer::start(&cfg, recording.clone()).await.unwrap();
    assert!(handle.wait_assigned(Duration::from_secs(20)).await);

    let address = broker.address();
    let sent_at = std::time::SystemTime::now();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client(
            &address,
            &["context", "ctx"],
            "nest-context",
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, Some(0), "{lines:#?}");
    let keyed = lines.iter().find(|l| l["step"] == "keyed").unwrap();
    assert_eq!(keyed["reply"]["project"]["name"], "ctx", "{keyed}");
    // The request whose deadline had passed got NestJS's error shape, and no handler ran.
    let late = lines.iter().find(|l| l["step"] == "late").unwrap();
    assert_eq!(late["error"]["status"], "error", "{late}");
    assert_eq!(late["error"]["code"], "DEADLINE_EXCEEDED", "{late}");
    assert_eq!(svc.project_count(), 1, "the late request ran its handler");

    let seen = recording.seen.lock().unwrap().clone();
    let (_, key, tenant, deadline) = seen
        .iter()
        .find(|(payload, ..)| payload.contains(r#""ctx""#))
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(key.as_deref(), Some("key-ctx"));
    assert_eq!(tenant.as_deref(), Some("acme"));
    let deadline = axion_runtime::deadline::parse(deadline.as_deref().unwrap().as_bytes()).unwrap();
    let ahead = deadline.duration_since(sent_at).unwrap();
    // Stamped 5 s after the send, which came after the Node process started.
    assert!(
        ahead >= Duration::from_secs(5) && ahead <= Duration::from_secs(60),
        "{ahead:?}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nest_caller_needs_the_bearer_token_the_auth_middleware_wants() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-nest-auth");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = GraphServiceServer::new(graph::Graph::default());
    let svc = server.service().clone();
    let guarded = axion_runtime::middleware::layered(server, auth::BearerAuth::new("s3cret"));
    let handle = KafkaServer::start(&cfg, guarded).await.unwrap();
    assert!(handle.wait_assigned(Duration::from_secs(20)).await);

    let address = broker.address();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client(
            &address,
            &["auth", "s3cret"],
            "nest-auth",
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, Some(0), "{lines:#?}");
    let step = |name: &str| lines.iter().find(|l| l["step"] == name).cloned().unwrap();
    for refused in ["none", "wrong"] {
        let line = step(refused);
        assert_eq!(line["error"]["code"], "UNAUTHENTICATED", "{line}");
        assert_eq!(line["error"]["status"], "error", "{line}");
    }
    assert_eq!(step("bearer")["reply"]["project"]["name"], "auth-bearer");
    assert_eq!(
        svc.project_count(),
        1,
        "refused requests never reached the handler"
    );
    handle.shutdown().await;
}

/// The "full" project the NestJS peer builds with ts-proto (see tests/nest/src).
fn assert_full_project(p: &Project) {
    assert_eq!(p.labels.len(), 2, "{p:?}");
    assert_eq!(p.status, ProjectStatus::Archived as i32);
    assert_eq!(
        p.created_at.as_ref().map(|t| t.seconds),
        Some(1_714_564_800)
    );
    assert_eq!(p.size_bytes, 1_234_567_890_123);
    assert_eq!(p.checksum, vec![0, 1, 2, 255]);
    assert_eq!(p.tags, vec!["a", "b"]);
    match &p.location {
        Some(project::Location::Git(g)) => assert_eq!(g.revision, "main"),
        other => panic!("expected the git oneof member, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_the_nest_server() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-rust-caller");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let address = broker.address();
    let nest =
        tokio::task::spawn_blocking(move || support::nest::server(&address, "graph-service"))
            .await
            .unwrap();

    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client()).with_timeout(Duration::from_secs(15));

    let alpha = client
        .create_project(&CreateProjectRequest {
            name: "alpha".into(),
            description: "from rust".into(),
            labels: [("team".to_owned(), "core".to_owned())].into(),
        })
        .await
        .unwrap()
        .project
        .unwrap();
    assert_eq!(alpha.name, "alpha");
    assert_eq!(alpha.labels["team"], "core");
    assert_eq!(alpha.status, ProjectStatus::Active as i32);
    assert!(alpha.created_at.is_some());

    let dup = client
        .create_project(&CreateProjectRequest {
            name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(dup.is(codes::ALREADY_EXISTS), "{dup:?}");
    assert_eq!(dup.message, "project alpha already exists");

    let boom = client
        .create_project(&CreateProjectRequest {
            name: "boom".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(boom.message, INTERNAL_SERVER_ERROR_MESSAGE, "{boom:?}");
    assert_eq!(boom.code(), None);

    // A numeric code and a message array (a validation pipe's shape) read leniently.
    let invalid = client
        .create_project(&CreateProjectRequest {
            name: "invalid".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Some("3"), "{invalid:?}");
    assert_eq!(invalid.message, "name is reserved; name is too short");
    assert_eq!(
        invalid.details["messages"],
        serde_json::json!(["name is reserved", "name is too short"])
    );

    let missing = client
        .get_project(&GetProjectRequest {
            id: "missing".into(),
        })
        .await
        .unwrap_err();
    assert!(missing.is(codes::NOT_FOUND), "{missing:?}");

    let full = client
        .get_project(&GetProjectRequest { id: "full".into() })
        .await
        .unwrap();
    assert_full_project(&full);

    client
        .create_project(&CreateProjectRequest {
            name: "beta".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<String> = client
        .list_projects(&ListProjectsRequest::default())
        .await
        .unwrap()
        .map(|p| p.unwrap().name)
        .collect()
        .await;
    assert_eq!(
        listed,
        vec!["alpha", "beta"],
        "an Observable arrives as a stream"
    );

    client
        .project_created(&ProjectCreatedEvent {
            project: Some(full.clone()),
        })
        .await
        .unwrap();
    let seen = nest
        .wait_for(Duration::from_secs(15), |v| v["event"] == "project-created")
        .expect("the NestJS server saw the event");
    // What the Nest handler got is exactly what a ts-proto peer would have sent.
    assert_eq!(seen["project"]["sizeBytes"], 1_234_567_890_123_i64);
    assert_eq!(seen["project"]["status"], 2);
    assert_eq!(seen["project"]["git"]["revision"], "main");
    assert_eq!(seen["project"]["createdAt"]["seconds"], 1_714_564_800);
    assert_eq!(
        seen["project"]["checksum"],
        serde_json::json!({"0": 0, "1": 1, "2": 2, "3": 255})
    );

    client
        .delete_project(&DeleteProjectRequest {
            id: alpha.id.clone(),
        })
        .await
        .unwrap();

    // Per-call options reach the Nest handler's KafkaContext: key, headers and the deadline.
    let before = std::time::SystemTime::now();
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let options = CallOptions::new()
        .key("key-gamma")
        .header("x-tenant", "acme")
        .header("traceparent", parent)
        .timeout(Duration::from_secs(12));
    client
        .create_project_with(
            &CreateProjectRequest {
                name: "gamma".into(),
                ..Default::default()
            },
            options,
        )
        .await
        .unwrap();
    let handled = nest
        .wait_for(Duration::from_secs(15), |v| {
            v["handled"] == "axion.graph-service.create-project" && v["name"] == "gamma"
        })
        .expect("the NestJS server handled gamma");
    assert_eq!(handled["key"], "key-gamma", "{handled}");
    assert_eq!(handled["tenant"], "acme", "{handled}");
    assert_eq!(
        handled["traceparent"], parent,
        "one traceparent, the given parent"
    );
    let deadline_ms = handled["deadline"].as_u64().expect("a deadline") as u128;
    let before_ms = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        (before_ms + 11_000..=before_ms + 13_000).contains(&deadline_ms),
        "now + 12 s: {deadline_ms} vs {before_ms}"
    );
    // The simple form sends no key or tenant, and still a deadline.
    client
        .create_project(&CreateProjectRequest {
            name: "delta".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let plain = nest
        .wait_for(Duration::from_secs(15), |v| v["name"] == "delta")
        .expect("delta's line");
    assert_eq!(plain["key"], serde_json::Value::Null, "{plain}");
    assert_eq!(plain["tenant"], serde_json::Value::Null, "{plain}");
    assert!(plain["deadline"].is_u64(), "{plain}");
    // Outside a handler and without an otel layer, a call starts its own trace.
    let started = plain["traceparent"].as_str().expect("a traceparent");
    assert!(
        started.len() == 55 && started.starts_with("00-") && !started.contains(parent),
        "{started}"
    );
}
