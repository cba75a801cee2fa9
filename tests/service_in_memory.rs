//! The checked-in goldens compile, and a hand-written GraphService served over the in-memory
//! transport answers the generated client: send, emit, errors, a server stream.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::{codes, Handler as _, MemoryTransport, RpcError};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    project, CreateProjectRequest, CreateProjectResponse, DeleteProjectRequest, GetProjectRequest,
    GraphService, ListProjectsRequest, Project, ProjectCreatedEvent, ProjectStatus,
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_NAME, GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};

#[derive(Default)]
struct Graph {
    projects: Mutex<Vec<Project>>,
    events: Mutex<Vec<String>>,
}

impl GraphService for Graph {
    async fn create_project(
        &self,
        request: CreateProjectRequest,
    ) -> Result<CreateProjectResponse, RpcError> {
        if request.name == "panic" {
            panic!("handler bug");
        }
        let mut projects = self.projects.lock().unwrap();
        if projects.iter().any(|p| p.name == request.name) {
            return Err(RpcError::already_exists(format!(
                "project {} already exists",
                request.name
            )));
        }
        let project = Project {
            id: format!("proj-{}", projects.len() + 1),
            name: request.name,
            description: request.description,
            labels: request.labels,
            status: ProjectStatus::Active as i32,
            size_bytes: -1,
            checksum: vec![0, 1, 255],
            location: Some(project::Location::WorkspacePath("/w".into())),
            ..Default::default()
        };
        projects.push(project.clone());
        Ok(CreateProjectResponse {
            project: Some(project),
        })
    }

    async fn get_project(&self, request: GetProjectRequest) -> Result<Project, RpcError> {
        self.projects
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.id == request.id)
            .cloned()
            .ok_or_else(|| RpcError::not_found(format!("no project {}", request.id)))
    }

    async fn list_projects(
        &self,
        _request: ListProjectsRequest,
    ) -> Result<axion_runtime::ResponseStream<Project>, RpcError> {
        let items: Vec<Result<Project, RpcError>> = self
            .projects
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Ok)
            .collect();
        Ok(axion_runtime::response_stream(
            axion_runtime::futures::stream::iter(items),
        ))
    }

    async fn delete_project(&self, request: DeleteProjectRequest) -> Result<(), RpcError> {
        let mut projects = self.projects.lock().unwrap();
        let before = projects.len();
        projects.retain(|p| p.id != request.id);
        if projects.len() == before {
            return Err(RpcError::not_found(format!("no project {}", request.id)));
        }
        Ok(())
    }

    async fn project_created(&self, event: ProjectCreatedEvent) -> Result<(), RpcError> {
        let name = event.project.map(|p| p.name).unwrap_or_default();
        self.events.lock().unwrap().push(name);
        Ok(())
    }
}

fn setup() -> (std::sync::Arc<Graph>, GraphServiceClient, MemoryTransport) {
    let transport = MemoryTransport::new();
    let graph = std::sync::Arc::new(Graph::default());
    transport
        .serve(GraphServiceServer::from_arc(graph.clone()))
        .unwrap();
    let client = GraphServiceClient::new(transport.client()).with_timeout(Duration::from_secs(5));
    (graph, client, transport)
}

#[test]
fn constants_mirror_the_ts_names() {
    assert_eq!(GRAPH_SERVICE_NAME, "graph-service");
    assert_eq!(
        GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
        "axion.graph-service.create-project"
    );
    assert_eq!(
        GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT,
        "axion.graph-service.create-project.reply"
    );
    assert_eq!(GRAPH_SERVICE_CONTRACT.server_group, "graph-service-server");
    assert_eq!(GRAPH_SERVICE_CONTRACT.methods.len(), 5);
    assert_eq!(
        GRAPH_SERVICE_CONTRACT
            .method(GRAPH_SERVICE_PATTERNS::PROJECT_CREATED)
            .unwrap()
            .kind,
        axion_runtime::MethodKind::Event
    );
}

#[tokio::test]
async fn send_error_stream_and_emit() {
    let (graph, client, _t) = setup();

    let created = client
        .create_project(&CreateProjectRequest {
            name: "alpha".into(),
            labels: HashMap::from([("team".into(), "core".into())]),
            ..Default::default()
        })
        .await
        .unwrap()
        .project
        .unwrap();
    assert_eq!(created.id, "proj-1");
    assert_eq!(created.labels["team"], "core");
    assert_eq!(created.checksum, vec![0, 1, 255]);
    assert_eq!(created.status, ProjectStatus::Active as i32);

    let dup = client
        .create_project(&CreateProjectRequest {
            name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(dup.is(codes::ALREADY_EXISTS), "{dup:?}");
    assert_eq!(dup.message, "project alpha already exists");

    let missing = client
        .get_project(&GetProjectRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert!(missing.is(codes::NOT_FOUND));

    let got = client
        .get_project(&GetProjectRequest {
            id: "proj-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(got, created);

    client
        .create_project(&CreateProjectRequest {
            name: "beta".into(),
            ..Default::default()
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
    assert_eq!(names, vec!["alpha", "beta"]);

    client
        .delete_project(&DeleteProjectRequest {
            id: "proj-1".into(),
        })
        .await
        .unwrap();

    client
        .project_created(&ProjectCreatedEvent {
            project: Some(created),
        })
        .await
        .unwrap();
    for _ in 0..100 {
        if !graph.events.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*graph.events.lock().unwrap(), vec!["alpha".to_owned()]);
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_error_and_the_server_keeps_serving() {
    let (_graph, client, _t) = setup();
    let err = client
        .create_project(&CreateProjectRequest {
            name: "panic".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.message, axion_runtime::INTERNAL_SERVER_ERROR_MESSAGE);
    assert!(client
        .create_project(&CreateProjectRequest {
            name: "ok".into(),
            ..Default::default()
        })
        .await
        .is_ok());
}

#[tokio::test]
async fn dispatcher_answers_bad_json_and_unknown_patterns_like_nest() {
    let server = GraphServiceServer::new(Graph::default());
    let mut replies = server.handle(axion_runtime::Incoming {
        pattern: GRAPH_SERVICE_PATTERNS::GET_PROJECT.into(),
        payload: br#"{"id": 12"#.to_vec(),
        correlation_id: Some("c1".into()),
    });
    let err = replies.next().await.unwrap().unwrap_err();
    assert!(err.is(codes::INVALID_ARGUMENT), "{err:?}");

    let mut replies = server.handle(axion_runtime::Incoming {
        pattern: "axion.graph-service.nope".into(),
        payload: b"{}".to_vec(),
        correlation_id: Some("c2".into()),
    });
    let err = replies.next().await.unwrap().unwrap_err();
    assert_eq!(err.message, axion_runtime::NO_HANDLER_MESSAGE);
}

#[test]
fn json_matches_what_a_ts_proto_peer_sends_and_reads() {
    // What a NestJS peer's JSON.stringify of a ts-proto object looks like.
    let from_nest = r#"{
        "id": "proj-7", "name": "alpha", "labels": {"a": "b"}, "description": "",
        "status": 2, "createdAt": "2024-05-01T12:00:00.000Z",
        "sizeBytes": 9007199254740991, "checksum": {"type": "Buffer", "data": [1, 2]},
        "git": {"url": "https://x", "revision": "main"}, "tags": ["x"], "unknownField": 1
    }"#;
    let p: Project = serde_json::from_str(from_nest).unwrap();
    assert_eq!(p.status, ProjectStatus::Archived as i32);
    assert_eq!(p.size_bytes, 9_007_199_254_740_991);
    assert_eq!(p.checksum, vec![1, 2]);
    assert_eq!(p.created_at.unwrap().seconds, 1_714_564_800);
    assert!(matches!(p.location, Some(project::Location::Git(ref s)) if s.revision == "main"));

    // Lenient: enum names, int64 strings, proto names, {seconds, nanos}, base64, null.
    let lenient = r#"{"status": "PROJECT_STATUS_ACTIVE", "size_bytes": "-5",
        "created_at": {"seconds": 10, "nanos": 5}, "checksum": "AAH/", "description": null,
        "workspace_path": "/w"}"#;
    let q: Project = serde_json::from_str(lenient).unwrap();
    assert_eq!(q.status, 1);
    assert_eq!(q.size_bytes, -5);
    assert_eq!(q.created_at.unwrap().nanos, 5);
    assert_eq!(q.checksum, vec![0, 1, 255]);
    assert_eq!(
        q.location,
        Some(project::Location::WorkspacePath("/w".into()))
    );

    // Encoding: camelCase, numbers for enums and int64, defaults present, unset messages absent.
    let out: serde_json::Value = serde_json::to_value(&q).unwrap();
    assert_eq!(out["status"], 1);
    assert_eq!(out["sizeBytes"], -5);
    assert_eq!(out["workspacePath"], "/w");
    assert_eq!(out["tags"], serde_json::json!([]));
    assert_eq!(out["name"], "");
    assert!(out.get("git").is_none());
    assert_eq!(
        out["checksum"],
        serde_json::json!({"0": 0, "1": 1, "2": 255})
    );
    assert_eq!(
        out["createdAt"],
        serde_json::json!({"seconds": 10, "nanos": 5})
    );
    let back: Project = serde_json::from_value(out).unwrap();
    assert_eq!(back, q);

    let bad = serde_json::from_str::<Project>(r#"{"status": "NOPE"}"#);
    assert!(bad.is_err());
}
