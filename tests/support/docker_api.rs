//! A fake Docker Engine API on 127.0.0.1, just enough for Traefik's docker provider: it lists
//! "containers" whose labels come from a test, each reachable at a loopback IP of its own.
//! Endpoints (any `/v1.NN` prefix): `/_ping`, `/version`, `/containers/json`,
//! `/containers/{id}/json`, and `/events` (a stream that stays open and sends nothing).
//! Every request path is recorded. Stops when dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// A container as the provider sees it.
#[derive(Clone, Debug)]
pub struct Container {
    /// Container name (without the leading `/`).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its IP on the `bridge` network.
    pub ip: IpAddr,
}

impl Container {
    pub fn new(name: &str, labels: Vec<(String, String)>, ip: IpAddr) -> Self {
        Container {
            name: name.to_owned(),
            labels,
            ip,
        }
    }

    fn id(&self) -> String {
        // 64 hex chars, stable per name.
        let mut id: String = self.name.bytes().map(|b| format!("{b:02x}")).collect();
        id.push_str(&"0".repeat(64));
        id.truncate(64);
        id
    }

    fn labels_json(&self) -> Value {
        Value::Object(
            self.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        )
    }

    fn networks(&self) -> Value {
        json!({ "bridge": {
            "NetworkID": "b".repeat(64),
            "EndpointID": "e".repeat(64),
            "Gateway": "",
            "IPAddress": self.ip.to_string(),
            "IPPrefixLen": 8,
            "MacAddress": "02:42:7f:00:00:01",
        }})
    }

    fn summary(&self) -> Value {
        json!({
            "Id": self.id(),
            "Names": [format!("/{}", self.name)],
            "Image": "axion/example:latest",
            "ImageID": "sha256:".to_owned() + &"1".repeat(64),
            "Command": "/app",
            "Created": 1_700_000_000,
            "Ports": [],
            "Labels": self.labels_json(),
            "State": "running",
            "Status": "Up 1 minute",
            "HostConfig": { "NetworkMode": "bridge" },
            "NetworkSettings": { "Networks": self.networks() },
            "Mounts": [],
        })
    }

    fn inspect(&self) -> Value {
        json!({
            "Id": self.id(),
            "Created": "2026-01-01T00:00:00Z",
            "Path": "/app",
            "Args": [],
            "State": {
                "Status": "running", "Running": true, "Paused": false, "Restarting": false,
                "OOMKilled": false, "Dead": false, "Pid": 4242, "ExitCode": 0, "Error": "",
                "StartedAt": "2026-01-01T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
            },
            "Image": "sha256:".to_owned() + &"1".repeat(64),
            "Name": format!("/{}", self.name),
            "RestartCount": 0,
            "HostConfig": { "NetworkMode": "bridge", "PortBindings": {} },
            "Config": {
                "Hostname": self.name,
                "Image": "axion/example:latest",
                "Labels": self.labels_json(),
                "ExposedPorts": {},
                "Env": [],
            },
            "NetworkSettings": {
                "Ports": {},
                "Networks": self.networks(),
            },
        })
    }
}

#[derive(Default)]
struct Shared {
    containers: Mutex<Vec<Container>>,
    requests: Mutex<Vec<String>>,
}

/// The fake API, serving until dropped.
pub struct DockerApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DockerApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DockerApi {
    /// Serves `containers` on a free port of 127.0.0.1.
    pub async fn start(containers: Vec<Container>) -> DockerApi {
        let shared = Arc::new(Shared {
            containers: Mutex::new(containers),
            requests: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DockerApi { addr, shared, task }
    }

    /// `tcp://127.0.0.1:PORT`, for `--providers.docker.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Every request path (with query) so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

const API_VERSION: &str = "1.47";

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    shared.requests.lock().unwrap().push(uri.to_string());
    // Strip a `/v1.NN` prefix.
    let mut path = uri.path();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            if rest[..slash]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                path = &rest[slash..];
            }
        }
    }
    let containers = shared.containers.lock().unwrap().clone();
    let ok = |body: Value| {
        (
            StatusCode::OK,
            [("Api-Version", API_VERSION), ("Ostype", "linux")],
            axum::Json(body),
        )
            .into_response()
    };
    match path {
        "/_ping" => (
            StatusCode::OK,
            [
                ("Api-Version", API_VERSION),
                ("Ostype", "linux"),
                ("Docker-Experimental", "false"),
                ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ],
            "OK",
        )
            .into_response(),
        "/version" => ok(json!({
            "Version": "27.5.1",
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.24",
            "GitCommit": "fake",
            "GoVersion": "go1.22",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.0",
            "BuildTime": "2026-01-01T00:00:00Z",
        })),
        "/info" => ok(
            json!({ "ID": "fake", "Name": "fake-docker", "Swarm": { "LocalNodeState": "inactive" } }),
        ),
        "/containers/json" => ok(Value::Array(
            containers.iter().map(Container::summary).collect(),
        )),
        "/events" => (
            StatusCode::OK,
            [
                ("Api-Version", API_VERSION),
                (header::CONTENT_TYPE.as_str(), "application/json"),
            ],
            Body::from_stream(axum_stream_pending()),
        )
            .into_response(),
        _ => {
            if let Some(id) = path
                .strip_prefix("/containers/")
                .and_then(|p| p.strip_suffix("/json"))
            {
                if let Some(c) = containers
                    .iter()
                    .find(|c| c.id() == id || c.id().starts_with(id) || c.name == id)
                {
                    return ok(c.inspect());
                }
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({ "message": format!("No such container: {id}") })),
                )
                    .into_response();
            }
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "message": format!("page not found: {path}") })),
            )
                .into_response()
        }
    }
}

/// A body stream that stays open and never yields (the event stream of a quiet daemon).
fn axum_stream_pending(
) -> impl axion_runtime::futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    axion_runtime::futures::stream::pending()
}
