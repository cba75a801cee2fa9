//! Exactly-once serving on the (patched) test broker: a server process that crashes after
//! its handler emitted an event, before the message's transaction committed, leaves nothing
//! a `read_committed` reader can see; restarted with the same transactional id it handles the
//! request again, and the caller gets one reply and readers one event, although the handler
//! ran twice and the first event is in the log.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod procs;
    #[allow(dead_code)]
    pub mod raw;
}

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use axion_runtime::{Request, Response, RpcError};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, DeleteProjectRequest, GetProjectRequest,
    GraphService, ListProjectsRequest, Project, ProjectCreatedEvent, GRAPH_SERVICE_CONTRACT,
    GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_REPLY_TOPICS,
};
use support::broker::Broker;
use support::procs::{wait_for, Killer};
use support::raw;

const SERVER_ENV: &str = "AXION_EOS_SERVER";

fn config(address: &str, client_id: &str) -> KafkaConfig {
    KafkaConfig::builder()
        .brokers([address.to_owned()])
        .client_id(client_id)
        .fetch_wait_ms(5)
        .request_timeout_ms(60_000)
        .session_timeout_ms(6_000)
        .build()
        .unwrap()
}

/// Creates a project and emits `ProjectCreated` through the runtime; the first run of each
/// name (no marker file yet) aborts the process right after the emit, before the reply.
struct Crashing {
    dir: std::path::PathBuf,
    events: GraphServiceClient,
}

impl GraphService for Crashing {
    async fn create_project(
        &self,
        request: Request<CreateProjectRequest>,
    ) -> Result<Response<CreateProjectResponse>, RpcError> {
        let name = request.into_inner().name;
        let project = Project {
            id: format!("p-{name}"),
            name: name.clone(),
            ..Default::default()
        };
        self.events
            .project_created(&ProjectCreatedEvent {
                project: Some(project.clone()),
            })
            .await?;
        let marker = self.dir.join(format!("ran-{name}"));
        if !marker.exists() {
            std::fs::write(&marker, b"").unwrap();
            // A crash between the handler's output and the commit.
            std::process::abort();
        }
        Ok(Response::new(CreateProjectResponse {
            project: Some(project),
        }))
    }
    async fn get_project(
        &self,
        _: Request<GetProjectRequest>,
    ) -> Result<Response<Project>, RpcError> {
        Err(RpcError::not_found("none"))
    }
    async fn list_projects(
        &self,
        _: Request<ListProjectsRequest>,
    ) -> Result<Response<axion_runtime::ResponseStream<Project>>, RpcError> {
        Err(RpcError::not_found("none"))
    }
    async fn delete_project(
        &self,
        _: Request<DeleteProjectRequest>,
    ) -> Result<Response<()>, RpcError> {
        Err(RpcError::not_found("none"))
    }
    async fn project_created(&self, _: Request<ProjectCreatedEvent>) -> Result<(), RpcError> {
        Ok(())
    }
}

async fn serve_in_this_process(dir: &Path) {
    let address = std::env::var("AXION_EOS_BROKER").unwrap();
    let generation = std::env::var("AXION_EOS_GENERATION").unwrap();
    let cfg = KafkaConfig {
        transactional_id: Some("graph-eos-1".into()),
        ..config(&address, "eos-server")
    };
    let events = KafkaClient::connect(&cfg, &[]).await.unwrap();
    let handler = Crashing {
        dir: dir.to_owned(),
        events: GraphServiceClient::new(events.client()),
    };
    let server = KafkaServer::start(&cfg, GraphServiceServer::new(handler))
        .await
        .unwrap();
    if server.wait_assigned(Duration::from_secs(60)).await {
        std::fs::write(dir.join(format!("ready-{generation}")), b"").unwrap();
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    server.shutdown().await;
}

fn spawn_server(dir: &Path, address: &str, generation: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_crash_before_the_commit_leaves_no_duplicate_for_read_committed_readers",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVER_ENV, dir)
        .env("AXION_EOS_GENERATION", generation.to_string())
        .env("AXION_EOS_BROKER", address)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_commit_leaves_no_duplicate_for_read_committed_readers() {
    if let Some(dir) = std::env::var_os(SERVER_ENV) {
        return serve_in_this_process(Path::new(&dir)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let broker = Broker::start();
    let address = broker.address();
    ensure_topics(&config(&address, "setup"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();

    let mut first = Killer(Some(spawn_server(&dir, &address, 1)));
    assert!(
        wait_for(&dir.join("ready-1"), Duration::from_secs(90)),
        "the first server never got partitions"
    );
    let kafka = KafkaClient::connect(&config(&address, "eos-caller"), &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = Arc::new(GraphServiceClient::new(kafka.client()));
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .create_project(&CreateProjectRequest {
                    name: "once".into(),
                    ..Default::default()
                })
                .await
        })
    };
    // The first server aborts inside the handler, after the emit.
    let crashed = first.0.as_mut().unwrap();
    let mut exited = None;
    for _ in 0..600 {
        if let Ok(Some(status)) = crashed.try_wait() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exited.is_some_and(|s| !s.success()),
        "the first server crashed"
    );
    first.0 = None;

    let _second = Killer(Some(spawn_server(&dir, &address, 2)));
    assert!(
        wait_for(&dir.join("ready-2"), Duration::from_secs(90)),
        "the second server never got partitions"
    );
    let reply = tokio::time::timeout(Duration::from_secs(90), call)
        .await
        .expect("answered after the restart")
        .unwrap()
        .unwrap();
    assert_eq!(reply.project.unwrap().name, "once");

    let address2 = address.clone();
    let (committed_events, all_events, replies) = tokio::task::spawn_blocking(move || {
        (
            raw::read_isolated(
                &address2,
                GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
                "read_committed",
            ),
            raw::read_isolated(
                &address2,
                GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
                "read_uncommitted",
            ),
            raw::read_isolated(
                &address2,
                GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT,
                "read_committed",
            ),
        )
    })
    .await
    .unwrap();
    eprintln!(
        "exactly-once: handler ran twice; events in the log {}, visible to read_committed {}; replies {}",
        all_events.len(),
        committed_events.len(),
        replies.len()
    );
    assert_eq!(
        all_events.len(),
        2,
        "both runs emitted: the first one's is in the log"
    );
    assert_eq!(committed_events.len(), 1, "read_committed sees one event");
    assert_eq!(replies.len(), 1, "one reply");
}
