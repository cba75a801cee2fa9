//! The example `GraphService`: projects in memory, a `ProjectCreated` event on every create.
//! Shared by `examples/graph_service.rs` and the integration tests.

use std::sync::Mutex;

use axion_runtime::{CallOptions, Request, Response, ResponseStream, RpcError};

use crate::contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use crate::contracts::axion::graph::v1::{
    CreateProjectRequest, CreateProjectResponse, DeleteProjectRequest, GetProjectRequest,
    GraphService, ListProjectsRequest, Project, ProjectCreatedEvent, ProjectStatus,
};

/// Projects in memory.
#[derive(Default)]
pub struct Graph {
    projects: Mutex<Vec<Project>>,
    next_id: Mutex<u64>,
    /// Where `ProjectCreated` events go (none: not emitted).
    pub events: Option<GraphServiceClient>,
    /// Every `ProjectCreated` event this instance received.
    pub received: Mutex<Vec<ProjectCreatedEvent>>,
}

impl Graph {
    /// A service that emits its events through `events`.
    pub fn emitting_to(events: GraphServiceClient) -> Self {
        Graph {
            events: Some(events),
            ..Graph::default()
        }
    }
}

impl Graph {
    /// How many projects this instance stores.
    #[allow(dead_code)] // used by some test crates only
    pub fn project_count(&self) -> usize {
        self.projects.lock().expect("projects").len()
    }
}

impl GraphService for Graph {
    async fn create_project(
        &self,
        request: Request<CreateProjectRequest>,
    ) -> Result<Response<CreateProjectResponse>, RpcError> {
        let request = request.into_inner();
        if request.name.is_empty() {
            return Err(RpcError::invalid_argument("name must not be empty"));
        }
        let project = {
            let mut projects = self.projects.lock().expect("projects");
            if projects.iter().any(|p| p.name == request.name) {
                return Err(RpcError::already_exists(format!(
                    "project {} already exists",
                    request.name
                )));
            }
            let mut next = self.next_id.lock().expect("ids");
            *next += 1;
            let now = std::time::SystemTime::now();
            let project = Project {
                id: format!("proj-{next}"),
                name: request.name,
                description: request.description,
                labels: request.labels,
                status: ProjectStatus::Active as i32,
                created_at: Some(now.into()),
                ..Project::default()
            };
            projects.push(project.clone());
            project
        };
        // Inside the request's `process` span: the line carries its trace id.
        tracing::info!(id = %project.id, name = %project.name, "project created");
        if let Some(events) = &self.events {
            let event = ProjectCreatedEvent {
                project: Some(project.clone()),
            };
            // Keyed by project: one project's events stay in order on one partition.
            let options = CallOptions::new().key(project.id.as_str());
            if let Err(e) = events.project_created_with(&event, options).await {
                tracing::warn!(error = %e, "ProjectCreated not emitted");
            }
        }
        let reply = CreateProjectResponse {
            project: Some(project),
        };
        Ok(reply.into())
    }

    async fn get_project(
        &self,
        request: Request<GetProjectRequest>,
    ) -> Result<Response<Project>, RpcError> {
        let request = request.into_inner();
        self.projects
            .lock()
            .expect("projects")
            .iter()
            .find(|p| p.id == request.id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| RpcError::not_found(format!("project {} not found", request.id)))
    }

    async fn list_projects(
        &self,
        request: Request<ListProjectsRequest>,
    ) -> Result<Response<ResponseStream<Project>>, RpcError> {
        let request = request.into_inner();
        let projects: Vec<Result<Project, RpcError>> = self
            .projects
            .lock()
            .expect("projects")
            .iter()
            .filter(|p| request.status == 0 || p.status == request.status)
            .cloned()
            .map(Ok)
            .collect();
        let stream = axion_runtime::response_stream(axion_runtime::futures::stream::iter(projects));
        Ok(stream.into())
    }

    async fn delete_project(
        &self,
        request: Request<DeleteProjectRequest>,
    ) -> Result<Response<()>, RpcError> {
        let request = request.into_inner();
        let mut projects = self.projects.lock().expect("projects");
        let before = projects.len();
        projects.retain(|p| p.id != request.id);
        if projects.len() == before {
            return Err(RpcError::not_found(format!(
                "project {} not found",
                request.id
            )));
        }
        Ok(().into())
    }

    async fn project_created(&self, event: Request<ProjectCreatedEvent>) -> Result<(), RpcError> {
        let id = event.get_ref().project.as_ref().map(|p| p.id.as_str());
        tracing::info!(?id, "ProjectCreated received");
        self.received
            .lock()
            .expect("received")
            .push(event.into_inner());
        Ok(())
    }
}
