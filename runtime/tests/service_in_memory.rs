//! The checked-in goldens compile, and a hand-written GraphService served over the in-memory
//! transport answers the generated client: send, emit, errors, a server stream.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
#[path = "../../examples/support/auth.rs"]
mod auth;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::{
    codes, CallOptions, Handler as _, Incoming, MemoryTransport, Request, Response, RpcError,
};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    project, CreateProjectRequest, CreateProjectResponse, DeleteProjectRequest, GetProjectRequest,
    GraphService, ListProjectsRequest, Project, ProjectCreatedEvent, ProjectStatus,
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_NAME, GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};

/// What a handler saw of a request's context.
#[derive(Clone, Debug)]
struct Seen {
    pattern: String,
    key: Option<String>,
    tenant: Option<String>,
    correlation_id: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    has_timestamp: bool,
    remaining: Option<Duration>,
    trace_id: Option<String>,
    span_id: Option<String>,
    /// The span id the `traceparent` it arrived with named.
    parent: Option<String>,
    /// What a call made from inside the handler did.
    nested: Option<Result<(), RpcError>>,
}

impl Seen {
    fn of(context: &axion_runtime::Context) -> Seen {
        Seen {
            pattern: context.pattern().to_owned(),
            key: context.key_str().map(str::to_owned),
            tenant: context.headers().get_str("x-tenant").map(str::to_owned),
            correlation_id: context.correlation_id().map(str::to_owned),
            partition: context.partition(),
            offset: context.offset(),
            has_timestamp: context.timestamp().is_some(),
            remaining: context.remaining(),
            trace_id: context.trace_id(),
            span_id: context.span_id(),
            parent: context
                .headers()
                .get_str("traceparent")
                .and_then(|t| t.split('-').nth(2))
                .map(str::to_owned),
            nested: None,
        }
    }
}

#[derive(Default)]
struct Graph {
    projects: Mutex<Vec<Project>>,
    events: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
    /// For handlers that call the service again (deadline inheritance).
    client: std::sync::OnceLock<GraphServiceClient>,
}

impl Graph {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl GraphService for Graph {
    async fn create_project(
        &self,
        request: Request<CreateProjectRequest>,
    ) -> Result<Response<CreateProjectResponse>, RpcError> {
        let (context, request) = request.into_parts();
        let mut seen = Seen::of(&context);
        if request.name == "panic" {
            panic!("handler bug");
        }
        if let Some(wait) = request.name.strip_prefix("nested-after-ms:") {
            // Calls GetProject after sleeping `wait` ms: inside the deadline, the call's own
            // deadline is the handler's; past it, the call is not made.
            tokio::time::sleep(Duration::from_millis(wait.parse().unwrap())).await;
            let client = self.client.get().expect("client");
            // Forwarding the request's headers (its traceparent included) must not make the
            // caller the nested call's parent: the handler's span is.
            let forwarded = CallOptions::new().headers(context.headers());
            let nested = client
                .get_project_with(&GetProjectRequest { id: "x".into() }, forwarded)
                .await;
            seen.nested = Some(nested.map(drop));
            self.seen.lock().unwrap().push(seen);
            return Err(RpcError::not_found("nested call made"));
        }
        self.seen.lock().unwrap().push(seen);
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
        let reply = CreateProjectResponse {
            project: Some(project),
        };
        Ok(Response::new(reply).with_header("x-created-by", "graph"))
    }

    async fn get_project(
        &self,
        request: Request<GetProjectRequest>,
    ) -> Result<Response<Project>, RpcError> {
        self.seen.lock().unwrap().push(Seen::of(request.context()));
        let request = request.into_inner();
        self.projects
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.id == request.id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| RpcError::not_found(format!("no project {}", request.id)))
    }

    async fn list_projects(
        &self,
        _request: Request<ListProjectsRequest>,
    ) -> Result<Response<axion_runtime::ResponseStream<Project>>, RpcError> {
        let items: Vec<Result<Project, RpcError>> = self
            .projects
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Ok)
            .collect();
        let stream = axion_runtime::response_stream(axion_runtime::futures::stream::iter(items));
        Ok(stream.into())
    }

    async fn delete_project(
        &self,
        request: Request<DeleteProjectRequest>,
    ) -> Result<Response<()>, RpcError> {
        let request = request.into_inner();
        let mut projects = self.projects.lock().unwrap();
        let before = projects.len();
        projects.retain(|p| p.id != request.id);
        if projects.len() == before {
            return Err(RpcError::not_found(format!("no project {}", request.id)));
        }
        Ok(().into())
    }

    async fn project_created(&self, event: Request<ProjectCreatedEvent>) -> Result<(), RpcError> {
        self.seen.lock().unwrap().push(Seen::of(event.context()));
        let name = event
            .into_inner()
            .project
            .map(|p| p.name)
            .unwrap_or_default();
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
    graph.client.set(client.clone()).unwrap();
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
    let mut replies = server.handle(Incoming::request(
        GRAPH_SERVICE_PATTERNS::GET_PROJECT,
        br#"{"id": 12"#.to_vec(),
        "c1",
    ));
    let err = replies.next().await.unwrap().unwrap_err();
    assert!(err.is(codes::INVALID_ARGUMENT), "{err:?}");

    let mut replies = server.handle(Incoming::request(
        "axion.graph-service.nope",
        b"{}".to_vec(),
        "c2",
    ));
    let err = replies.next().await.unwrap().unwrap_err();
    assert_eq!(err.message, axion_runtime::NO_HANDLER_MESSAGE);

    // A request to an event pattern: refused, the event handler not run.
    let graph = std::sync::Arc::new(Graph::default());
    let server = GraphServiceServer::from_arc(graph.clone());
    let mut replies = server.handle(Incoming::request(
        GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
        b"{}".to_vec(),
        "c3",
    ));
    let err = replies.next().await.unwrap().unwrap_err();
    assert!(err.is(codes::UNIMPLEMENTED), "{err:?}");
    assert!(replies.next().await.is_none());
    assert!(graph.seen().is_empty(), "the event handler ran");
}

#[tokio::test]
async fn handlers_see_key_headers_deadline_and_where_the_message_was_read() {
    let (graph, client, _t) = setup();
    let options = CallOptions::new()
        .key("p-1")
        .header("x-tenant", "acme")
        // Transport headers are the transport's: these are not sent.
        .header("kafka_replyTopic", "axion.graph-service.project-created")
        .header("axion-deadline", "1")
        .timeout(Duration::from_millis(1500));
    // A traceparent given as an option continues that trace (e.g. one that came in over HTTP).
    let options = options.header(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    let reply = client
        .create_project_with(
            &CreateProjectRequest {
                name: "alpha".into(),
                ..Default::default()
            },
            options,
        )
        .await
        .unwrap();
    assert_eq!(reply.headers().get_str("x-created-by"), Some("graph"));
    assert_eq!(reply.get_ref().project.as_ref().unwrap().name, "alpha");
    // The reply names the processing span as its parent, in the same trace.
    let reply_parent = reply.headers().get_str("traceparent").unwrap().to_owned();
    assert_eq!(reply.headers().get_all("traceparent").count(), 1);
    client
        .create_project(&CreateProjectRequest {
            name: "beta".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let seen = graph.seen();
    let first = &seen[0];
    assert_eq!(first.pattern, GRAPH_SERVICE_PATTERNS::CREATE_PROJECT);
    assert_eq!(first.key.as_deref(), Some("p-1"));
    assert_eq!(
        first.trace_id.as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(first.parent.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(first.tenant.as_deref(), Some("acme"));
    assert!(first.correlation_id.is_some());
    assert_eq!((first.partition, first.offset), (Some(0), Some(0)));
    assert!(first.has_timestamp);
    assert_eq!(
        reply_parent,
        format!(
            "00-0af7651916cd43dd8448eb211c80319c-{}-01",
            first.span_id.as_deref().unwrap()
        )
    );
    let left = first.remaining.expect("a deadline");
    assert!(
        left <= Duration::from_millis(1501) && left > Duration::from_millis(500),
        "the call's own timeout, not the header it tried to set: {left:?}"
    );
    // The simple form: no key or tenant, the client's 5 s timeout, the next offset.
    let second = &seen[1];
    assert_eq!(
        (second.key.as_deref(), second.tenant.as_deref()),
        (None, None)
    );
    assert_eq!(second.offset, Some(1));
    assert!(second.remaining.unwrap() > Duration::from_secs(3));

    client
        .project_created_with(
            &ProjectCreatedEvent::default(),
            CallOptions::new().key("p-9").header("x-tenant", "acme"),
        )
        .await
        .unwrap();
    let event = wait_for_seen(&graph, 3).await.pop().unwrap();
    assert_eq!(event.pattern, GRAPH_SERVICE_PATTERNS::PROJECT_CREATED);
    assert_eq!(event.key.as_deref(), Some("p-9"));
    assert_eq!(event.tenant.as_deref(), Some("acme"));
    assert_eq!(event.correlation_id, None, "an event has no correlation id");
    assert_eq!(event.remaining, None, "an event has no deadline");
}

async fn wait_for_seen(graph: &Graph, n: usize) -> Vec<Seen> {
    for _ in 0..200 {
        if graph.seen().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = graph.seen();
    assert!(seen.len() >= n, "{seen:?}");
    seen
}

#[tokio::test]
async fn calls_made_by_a_handler_inherit_its_deadline() {
    let (graph, client, _t) = setup();
    let options = || CallOptions::new().timeout(Duration::from_millis(400));
    let request = |name: &str| CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    };
    // Inside the deadline: the nested call is made with what is left, not its client's 5 s.
    let err = client
        .create_project_with(&request("nested-after-ms:0"), options())
        .await
        .unwrap_err();
    assert!(err.is(codes::NOT_FOUND), "{err:?}");
    let seen = wait_for_seen(&graph, 2).await;
    // The nested call is recorded first: the outer handler records when it is done.
    let (inner, outer) = (&seen[0], &seen[1]);
    assert_eq!(inner.pattern, GRAPH_SERVICE_PATTERNS::GET_PROJECT);
    let (outer_left, inner_left) = (outer.remaining.unwrap(), inner.remaining.unwrap());
    assert!(
        // (deadlines travel in whole milliseconds, rounded up)
        inner_left <= outer_left + Duration::from_millis(2)
            && inner_left <= Duration::from_millis(402),
        "outer {outer_left:?}, inner {inner_left:?}"
    );
    assert!(matches!(&outer.nested, Some(Err(e)) if e.is(codes::NOT_FOUND)));
    // One trace: the nested call's parent is the outer handler's processing span.
    assert!(outer.trace_id.is_some());
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(inner.parent, outer.span_id);
    assert_ne!(inner.span_id, outer.span_id);

    // A zero timeout (a `remaining()` that ran out) fails at once, nothing sent.
    let err = client
        .create_project_with(
            &request("never-sent"),
            CallOptions::new().timeout(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert!(err.is(codes::DEADLINE_EXCEEDED), "{err:?}");
    assert_eq!(graph.seen().len(), 2, "nothing reached the service");

    // Past the deadline: the handler's call fails at once and nothing is sent.
    let err = client
        .create_project_with(&request("nested-after-ms:600"), options())
        .await
        .unwrap_err();
    assert!(err.is(codes::DEADLINE_EXCEEDED), "{err:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = graph.seen();
    assert_eq!(seen.len(), 3, "no GetProject after the deadline: {seen:?}");
    let nested = seen[2].nested.clone().expect("the handler finished");
    let e = nested.unwrap_err();
    assert!(
        e.is(codes::DEADLINE_EXCEEDED) && e.message.contains("not called"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_request_dequeued_past_its_deadline_is_refused_without_running_the_handler() {
    let graph = std::sync::Arc::new(Graph::default());
    let server = GraphServiceServer::from_arc(graph.clone());
    let past = std::time::SystemTime::now() - Duration::from_millis(250);
    let mut incoming = Incoming::request(
        GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
        br#"{"name": "late"}"#.to_vec(),
        "c-late",
    );
    incoming
        .headers
        .append("axion-deadline", axion_runtime::deadline::format(past));
    let err = server.handle(incoming).next().await.unwrap().unwrap_err();
    assert!(err.is(codes::DEADLINE_EXCEEDED), "{err:?}");
    assert!(err.message.contains("before the handler ran"), "{err:?}");
    assert!(graph.seen().is_empty(), "the handler ran");

    // A deadline header that is not a number is no deadline: the handler runs.
    let mut incoming = Incoming::request(
        GRAPH_SERVICE_PATTERNS::CREATE_PROJECT,
        br#"{"name": "hostile"}"#.to_vec(),
        "c-hostile",
    );
    incoming.headers.append("axion-deadline", "-1; drop table");
    let reply = server.handle(incoming).next().await.unwrap().unwrap();
    assert_eq!(reply.headers.get_str("x-created-by"), Some("graph"));
    assert_eq!(graph.seen()[0].remaining, None);

    // An event is never refused for a deadline (nobody waits; dropping it would lose it).
    let mut incoming = Incoming::event(GRAPH_SERVICE_PATTERNS::PROJECT_CREATED, b"{}".to_vec());
    incoming
        .headers
        .append("axion-deadline", axion_runtime::deadline::format(past));
    assert!(server.handle(incoming).next().await.is_none());
    assert_eq!(graph.events.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_tower_layer_refuses_requests_without_credentials_and_lets_events_pass() {
    let transport = MemoryTransport::new();
    let graph = std::sync::Arc::new(Graph::default());
    let server = GraphServiceServer::from_arc(graph.clone());
    transport
        .serve(axion_runtime::middleware::layered(
            server,
            auth::BearerAuth::new("s3cret"),
        ))
        .unwrap();
    let client = GraphServiceClient::new(transport.client());
    let request = |name: &str| CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    };
    let err = client.create_project(&request("anon")).await.unwrap_err();
    assert!(err.is(codes::UNAUTHENTICATED), "{err:?}");
    assert_eq!(err.message, "no authorization header");
    let wrong = CallOptions::new().header("authorization", "Bearer guess");
    let err = client
        .create_project_with(&request("guess"), wrong)
        .await
        .unwrap_err();
    assert!(err.is(codes::UNAUTHENTICATED), "{err:?}");
    assert!(graph.seen().is_empty(), "the handler ran");
    let right = CallOptions::new().header("authorization", "Bearer s3cret");
    let ok = client.create_project_with(&request("ok"), right).await;
    assert_eq!(ok.unwrap().into_inner().project.unwrap().name, "ok");
    client
        .project_created(&ProjectCreatedEvent::default())
        .await
        .unwrap();
    assert_eq!(wait_for_seen(&graph, 2).await.len(), 2, "the event passed");
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

/// Answers every request with three replies, `gap` apart (a multi-message answer).
struct SlowTrickle {
    gap: Duration,
}

impl axion_runtime::Handler for SlowTrickle {
    fn contract(&self) -> &'static axion_runtime::ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, _incoming: Incoming) -> axion_runtime::RawReplies {
        let gap = self.gap;
        Box::pin(axion_runtime::futures::stream::unfold(
            0,
            move |n| async move {
                if n == 3 {
                    return None;
                }
                tokio::time::sleep(gap).await;
                let reply = axion_runtime::Reply::from(br#"{"id":"p","name":"n"}"#.to_vec());
                Some((Ok(reply), n + 1))
            },
        ))
    }
}

#[tokio::test]
async fn a_unary_call_takes_at_most_its_timeout_even_with_a_trickling_answer() {
    let transport = MemoryTransport::new();
    transport
        .serve(SlowTrickle {
            gap: Duration::from_millis(400),
        })
        .unwrap();
    let client =
        GraphServiceClient::new(transport.client()).with_timeout(Duration::from_millis(1000));
    // Each reply comes well within 1 s of the last, all three by 1.2 s: a timeout that
    // restarts per reply would let the call succeed; the call's own deadline ends it at 1 s.
    let e = client
        .get_project(&GetProjectRequest { id: "p".into() })
        .await
        .unwrap_err();
    assert!(e.is(codes::DEADLINE_EXCEEDED), "{e:?}");
}

/// Counts event deliveries per project name; fails each name's first `fail_first` deliveries.
#[derive(Default)]
struct Events {
    fail_first: usize,
    deliveries: Mutex<HashMap<String, usize>>,
}

impl axion_runtime::Handler for Events {
    fn contract(&self) -> &'static axion_runtime::ServiceContract {
        &GRAPH_SERVICE_CONTRACT
    }
    fn handle(&self, incoming: Incoming) -> axion_runtime::RawReplies {
        let event: ProjectCreatedEvent =
            axion_runtime::json::decode(&incoming.payload).unwrap_or_default();
        let name = event.project.map(|p| p.name).unwrap_or_default();
        let n = {
            let mut d = self.deliveries.lock().unwrap();
            let n = d.entry(name).or_default();
            *n += 1;
            *n
        };
        let failed = n <= self.fail_first;
        Box::pin(axion_runtime::futures::stream::iter(
            failed.then(|| Err(RpcError::unavailable("not yet"))),
        ))
    }
}

async fn settle(events: &Events, total: usize) -> HashMap<String, usize> {
    for _ in 0..200 {
        let d = events.deliveries.lock().unwrap().clone();
        if d.values().sum::<usize>() >= total {
            tokio::time::sleep(Duration::from_millis(30)).await;
            return events.deliveries.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    events.deliveries.lock().unwrap().clone()
}

fn event(name: &str) -> ProjectCreatedEvent {
    ProjectCreatedEvent {
        project: Some(Project {
            name: name.into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn the_in_memory_transport_simulates_at_least_once_delivery() {
    use axion_runtime::DeliveryFaults;

    // Every request delivered twice: a handler that is not idempotent shows it (the copy of a
    // create fails with ALREADY_EXISTS), while the caller keeps the first reply.
    let transport = MemoryTransport::with_faults(DeliveryFaults::at_least_once());
    let graph = std::sync::Arc::new(Graph::default());
    transport
        .serve(GraphServiceServer::from_arc(graph.clone()))
        .unwrap();
    let client = GraphServiceClient::new(transport.client()).with_timeout(Duration::from_secs(5));
    let created = client
        .create_project(&CreateProjectRequest {
            name: "twice".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.project.unwrap().name, "twice");
    for _ in 0..100 {
        if graph.seen().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = graph.seen();
    assert_eq!(seen.len(), 2, "the create ran twice: {seen:?}");
    assert_eq!(
        seen[0].correlation_id, seen[1].correlation_id,
        "a redelivery, not a new call"
    );
    assert_eq!(seen[0].offset, seen[1].offset);

    // Events: each handled twice, and a failed one delivered again until it succeeds.
    let transport = MemoryTransport::with_faults(DeliveryFaults {
        duplicate: 0.0,
        event_attempts: 3,
        ..DeliveryFaults::at_least_once()
    });
    let events = std::sync::Arc::new(Events {
        fail_first: 2,
        ..Events::default()
    });
    transport.serve(ArcHandler(events.clone())).unwrap();
    let client = GraphServiceClient::new(transport.client());
    client.project_created(&event("flaky")).await.unwrap();
    assert_eq!(
        settle(&events, 3).await["flaky"],
        3,
        "failed twice, delivered a third time"
    );

    let transport = MemoryTransport::with_faults(DeliveryFaults::at_least_once());
    let events = std::sync::Arc::new(Events::default());
    transport.serve(ArcHandler(events.clone())).unwrap();
    let client = GraphServiceClient::new(transport.client());
    client.project_created(&event("dup")).await.unwrap();
    assert_eq!(settle(&events, 2).await["dup"], 2, "delivered twice");

    // Without faults: exactly once. And the same seed makes the same choices.
    let transport = MemoryTransport::new();
    let events = std::sync::Arc::new(Events::default());
    transport.serve(ArcHandler(events.clone())).unwrap();
    GraphServiceClient::new(transport.client())
        .project_created(&event("once"))
        .await
        .unwrap();
    assert_eq!(settle(&events, 1).await["once"], 1);
    let mut totals = Vec::new();
    for _ in 0..2 {
        let transport = MemoryTransport::with_faults(DeliveryFaults {
            duplicate: 0.5,
            seed: 42,
            ..DeliveryFaults::default()
        });
        let events = std::sync::Arc::new(Events::default());
        transport.serve(ArcHandler(events.clone())).unwrap();
        let client = GraphServiceClient::new(transport.client());
        for n in 0..40 {
            client
                .project_created(&event(&format!("e{n}")))
                .await
                .unwrap();
        }
        // Every delivery has run once the count stops moving (bounded).
        let total = || events.deliveries.lock().unwrap().values().sum::<usize>();
        let (mut last, mut still) = (total(), 0);
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = total();
            still = if now == last { still + 1 } else { 0 };
            last = now;
            if still == 5 {
                break;
            }
        }
        totals.push(last);
    }
    assert!(
        totals[0] > 40 && totals[0] < 80,
        "about half duplicated: {totals:?}"
    );
    assert_eq!(totals[0], totals[1], "same seed, same duplicates");
}

/// Serves a shared handler.
struct ArcHandler<H>(std::sync::Arc<H>);

impl<H: axion_runtime::Handler> axion_runtime::Handler for ArcHandler<H> {
    fn contract(&self) -> &'static axion_runtime::ServiceContract {
        self.0.contract()
    }
    fn handle(&self, incoming: Incoming) -> axion_runtime::RawReplies {
        self.0.handle(incoming)
    }
}
