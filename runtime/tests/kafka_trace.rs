//! One trace across three processes on a real broker: a NestJS client instrumented with
//! `@opentelemetry/instrumentation-kafkajs` calls the Rust server (runtime feature `otel`, spans
//! exported through `tracing-opentelemetry` to an in-memory exporter), whose handler emits
//! `ProjectCreated` to an instrumented NestJS server. Parent links are checked span by span:
//! Nest `send` -> Rust `process` -> Rust `send` (the emit) -> Nest `process`.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../../generated/mod.rs"]
mod contracts;
mod support {
    pub mod broker;
    #[allow(dead_code)]
    pub mod nest;
}
#[path = "../../examples/support/graph.rs"]
#[allow(dead_code)]
mod graph;

use std::time::Duration;

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaServer};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::{GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_PATTERNS};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::Value;
use support::broker::{config, Broker};
use tracing_subscriber::layer::SubscriberExt as _;

/// Spans of a NestJS process: `{"spans": [...]}` lines, the last one wins.
fn nest_spans(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .rev()
        .find_map(|l| l["spans"].as_array().cloned())
        .unwrap_or_default()
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_a_nest_caller_through_rust_to_a_nest_server() {
    // This test binary's only test: the subscriber is process-wide.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("axion-trace-test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let broker = Broker::start();
    let cfg = config(&broker, "it-trace");
    ensure_topics(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let address = broker.address();
    let events = tokio::task::spawn_blocking(move || {
        support::nest::server_with(
            &address,
            "nest-events",
            &[("NEST_ROLE", "events"), ("AXION_OTEL", "1")],
        )
    })
    .await
    .unwrap();
    let kafka = KafkaClient::connect(&cfg, &[&GRAPH_SERVICE_CONTRACT])
        .await
        .unwrap();
    let server = GraphServiceServer::new(graph::Graph::emitting_to(GraphServiceClient::new(
        kafka.client(),
    )));
    let handle = KafkaServer::start(&cfg, server).await.unwrap();
    assert!(handle.wait_assigned(Duration::from_secs(20)).await);

    let address = broker.address();
    let (lines, status) = tokio::task::spawn_blocking(move || {
        support::nest::run_client_with(
            &address,
            &["traced", "traced-alpha"],
            "nest-traced",
            Duration::from_secs(60),
            &[("AXION_OTEL", "1")],
        )
    })
    .await
    .unwrap();
    assert_eq!(status, Some(0), "{lines:#?}");
    let caller = nest_spans(&lines);
    let event_spans = events
        .wait_for(Duration::from_secs(20), |v| {
            v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["kind"] == 4 || s["kind"] == 3))
        })
        .expect("the NestJS server printed its spans");
    let callee = nest_spans(&[event_spans]);

    // A Rust call made inside an application span continues that span's trace.
    let outer = tracing::info_span!("outer-operation");
    let outer_context = {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        outer.context().span().span_context().clone()
    };
    assert!(outer_context.is_valid());
    {
        use tracing::Instrument as _;
        let client = GraphServiceClient::new(kafka.client());
        let request = contracts::axion::graph::v1::CreateProjectRequest {
            name: "from-a-rust-span".into(),
            ..Default::default()
        };
        client
            .create_project(&request)
            .instrument(outer.clone())
            .await
            .unwrap();
    }
    drop(outer);
    handle.shutdown().await;
    let _ = provider.force_flush();
    let rust = exporter.get_finished_spans().unwrap();

    // Nest client: the producer span of the request.
    let send = named(
        &caller,
        &format!("send {}", GRAPH_SERVICE_PATTERNS::CREATE_PROJECT),
    );
    let trace_id = send["traceId"].as_str().unwrap().to_owned();
    // Rust: the processing span, a child of that producer span, in its trace.
    let process_name = format!("process {}", GRAPH_SERVICE_PATTERNS::CREATE_PROJECT);
    let process = rust
        .iter()
        .find(|s| s.name == process_name && s.span_context.trace_id().to_string() == trace_id)
        .unwrap_or_else(|| {
            panic!(
                "no Rust span {process_name:?}: {:?}",
                rust.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(process.span_kind, opentelemetry::trace::SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id().to_string(), trace_id);
    assert_eq!(
        process.parent_span_id.to_string(),
        send["spanId"].as_str().unwrap(),
        "the Rust span's parent is the Nest producer span"
    );
    let attribute = |key: &str| {
        process
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attribute("messaging.destination.name").as_deref(),
        Some(GRAPH_SERVICE_PATTERNS::CREATE_PROJECT)
    );
    assert_eq!(attribute("messaging.system").as_deref(), Some("kafka"));
    // Rust: the handler's emit, a producer span under the processing span.
    let emit_name = format!("send {}", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED);
    let emitted = rust
        .iter()
        .find(|s| s.name == emit_name && s.parent_span_id == process.span_context.span_id())
        .unwrap_or_else(|| panic!("no Rust span {emit_name:?} under the processing span"));
    assert_eq!(emitted.span_kind, opentelemetry::trace::SpanKind::Producer);
    assert_eq!(emitted.span_context.trace_id().to_string(), trace_id);
    // Nest server: the event's consumer span, a child of the Rust producer span.
    let consumed = named(
        &callee,
        &format!("process {}", GRAPH_SERVICE_PATTERNS::PROJECT_CREATED),
    );
    assert_eq!(consumed["traceId"], trace_id.as_str(), "{callee:#?}");
    assert_eq!(
        consumed["parentSpanId"],
        emitted.span_context.span_id().to_string().as_str(),
        "the Nest consumer span's parent is the Rust producer span"
    );
    // The call made inside the application span: outer -> send -> process.
    let send_name = format!("send {}", GRAPH_SERVICE_PATTERNS::CREATE_PROJECT);
    let sent = rust
        .iter()
        .find(|s| s.name == send_name && s.parent_span_id == outer_context.span_id())
        .expect("a send span whose parent is the caller's span");
    let continued = rust
        .iter()
        .find(|s| s.name == process_name && s.parent_span_id == sent.span_context.span_id())
        .expect("a process span whose parent is that send span");
    assert_eq!(continued.span_context.trace_id(), outer_context.trace_id());
    // And the Nest client's reply consumer continues from the Rust span too.
    let reply = named(
        &caller,
        &format!(
            "process {}",
            contracts::axion::graph::v1::GRAPH_SERVICE_REPLY_TOPICS::CREATE_PROJECT
        ),
    );
    assert_eq!(reply["traceId"], trace_id.as_str());
    assert_eq!(
        reply["parentSpanId"],
        process.span_context.span_id().to_string().as_str()
    );
}
