//! Drop-in peers: a real NestJS client (ts-proto types from the same protos) calls the Rust
//! server, and the Rust client calls a real NestJS server, through a real broker.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
    pub mod nest;
}
#[path = "../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaServer};
use axion_runtime::{codes, INTERNAL_SERVER_ERROR_MESSAGE};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    project, CreateProjectRequest, DeleteProjectRequest, GetProjectRequest, ListProjectsRequest,
    Project, ProjectCreatedEvent, ProjectStatus, GRAPH_SERVICE_CONTRACT,
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
}
