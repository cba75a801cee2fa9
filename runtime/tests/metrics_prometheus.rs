//! Metrics as Prometheus sees them: the example service (`examples/support/graph_edge.rs`) on
//! a real broker, its edge serving `/metrics`, `promtool check metrics` on the page, and
//! Debian's real Prometheus scraping the edge and answering a query for the request count
//! through its HTTP API.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    #[path = "../../../examples/support/auth.rs"]
    pub mod auth;
    pub mod broker;
    #[allow(dead_code)]
    #[path = "../../../examples/support/graph.rs"]
    pub mod graph;
    #[path = "../../../examples/support/graph_edge.rs"]
    pub mod graph_edge;
    #[allow(dead_code)]
    pub mod procs;
}

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axion_runtime::kafka::KafkaClient;
use axion_runtime::CallOptions;
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GetProjectRequest, GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS,
};
use support::broker::{config, Broker};
use support::procs::Killer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET path` over HTTP/1.0; the body.
async fn get(address: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("an answer")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_edge_and_counts_the_requests() {
    let broker = Broker::start();
    let cfg = config(&broker, "it-metrics");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = support::graph_edge::start(&cfg, listener).await.unwrap();
    assert!(running.server.wait_assigned(Duration::from_secs(20)).await);
    let edge_address = running.edge_addr.to_string();
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let client = GraphServiceClient::new(kafka.client());

    // 5 creates, 2 of them failing (ALREADY_EXISTS), and a failed get.
    for name in ["a", "b", "c", "a", "b"] {
        let _ = client
            .create_project(&CreateProjectRequest {
                name: name.into(),
                ..Default::default()
            })
            .await;
    }
    let missing = client
        .get_project(&GetProjectRequest { id: "nope".into() })
        .await;
    assert!(missing.is_err());
    // Refused before it is sent (no time left): timed as a failed call, not counted as sent.
    let refused = client
        .create_project_with(
            &CreateProjectRequest {
                name: "never-sent".into(),
                ..Default::default()
            },
            CallOptions::new().timeout(Duration::ZERO),
        )
        .await;
    assert!(refused.is_err());

    let page = get(&edge_address, "/metrics").await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (bash scripts/setup.sh installs Debian's prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let create = GRAPH_SERVICE_PATTERNS::CREATE_PROJECT;
    for expected in [
        format!("messaging_process_duration_seconds_count{{messaging_destination_name=\"{create}\"}} 3"),
        format!("messaging_process_duration_seconds_count{{messaging_destination_name=\"{create}\",error_type=\"ALREADY_EXISTS\"}} 2"),
        format!("messaging_client_sent_messages_total{{messaging_destination_name=\"{create}\"}} 5"),
        format!("messaging_client_consumed_messages_total{{messaging_destination_name=\"{create}\"}} 5"),
        format!("messaging_client_operation_duration_seconds_count{{messaging_destination_name=\"{}\",messaging_operation_name=\"send\",error_type=\"NOT_FOUND\"}} 1", GRAPH_SERVICE_PATTERNS::GET_PROJECT),
        format!("messaging_client_operation_duration_seconds_count{{messaging_destination_name=\"{create}\",messaging_operation_name=\"send\",error_type=\"DEADLINE_EXCEEDED\"}} 1"),
        format!("axion_messages_in_flight{{messaging_destination_name=\"{create}\"}} 0"),
        "# TYPE axion_consumer_lag gauge".to_owned(),
    ] {
        assert!(page.contains(&expected), "no {expected:?} in\n{page}");
    }

    // The real Prometheus, scraping the edge every second.
    let dir = tempfile::tempdir().unwrap();
    let prometheus_port = free_port();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_path,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: graph-service\n    static_configs:\n      - targets: ['{edge_address}']\n"
        ),
    )
    .unwrap();
    let prometheus = Killer(Some(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (bash scripts/setup.sh installs it)"),
    ));
    let query = format!(
        "sum(messaging_process_duration_seconds_count{{messaging_destination_name=\"{create}\"}})"
    );
    let path = format!(
        "/api/v1/query?query={}",
        query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    );
    let prometheus_address = format!("127.0.0.1:{prometheus_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answered = loop {
        assert!(Instant::now() < deadline, "Prometheus never had the sample");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tokio::net::TcpStream::connect(&prometheus_address)
            .await
            .is_err()
        {
            continue;
        }
        let body = get(&prometheus_address, &path).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(value) = v["data"]["result"][0]["value"][1].as_str() {
            break value.to_owned();
        }
    };
    assert_eq!(
        answered, "5",
        "every create-project request, failed ones included"
    );

    // Prometheus first: the edge's graceful stop waits for its scrape connections.
    drop(prometheus);
    running.shutdown().await;
}
