//! Process-wide switches, in a test binary of their own: `telemetry::set_enabled(false)` (or
//! `AXION_TELEMETRY=off`: no trace headers and no metrics, the request context unchanged), and
//! the runtime's registry as the `metrics` crate's global recorder.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use axion_runtime::{CallOptions, MemoryTransport};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::CreateProjectRequest;

#[tokio::test]
async fn telemetry_off_sends_no_trace_headers_and_records_no_metrics() {
    axion_runtime::telemetry::set_enabled(false);
    let transport = MemoryTransport::new();
    transport
        .serve(GraphServiceServer::new(graph::Graph::default()))
        .unwrap();
    let client = GraphServiceClient::new(transport.client());
    let request = CreateProjectRequest {
        name: "quiet".into(),
        ..Default::default()
    };
    let reply = client
        .create_project_with(&request, CallOptions::new().key("k"))
        .await
        .unwrap();
    assert!(
        !reply.headers().contains_key("traceparent"),
        "{:?}",
        reply.headers()
    );
    let page = axion_runtime::metrics::global().render();
    assert!(!page.contains("create-project"), "{page}");

    // Back on: the same call is traced and counted.
    axion_runtime::telemetry::set_enabled(true);
    let request = CreateProjectRequest {
        name: "loud".into(),
        ..Default::default()
    };
    let reply = client
        .create_project_with(&request, CallOptions::new())
        .await
        .unwrap();
    assert!(reply.headers().contains_key("traceparent"));
    let page = axion_runtime::metrics::global().render();
    assert!(
        page.contains(r#"messaging_client_sent_messages_total{messaging_destination_name="axion.graph-service.create-project"} 1"#),
        "{page}"
    );
}

#[test]
fn a_services_own_metrics_land_on_the_page_once_the_registry_is_the_global_recorder() {
    axion_runtime::metrics::install_global_recorder().expect("no other recorder");
    metrics::counter!("graph_projects_archived_total", "tenant" => "acme").increment(2);
    let page = axion_runtime::metrics::global().render();
    assert!(
        page.contains(r#"graph_projects_archived_total{tenant="acme"} 2"#),
        "{page}"
    );
}
