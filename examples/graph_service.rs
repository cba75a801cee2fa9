//! Serves the generated `GraphService` over Kafka, as a peer of the stack's NestJS services,
//! with its HTTP/WebSocket edge where its Traefik labels point.
//!
//! ```text
//! KAFKA_BROKERS=127.0.0.1:9092 cargo run --example graph_service
//! ```
//! Creates the contract's topics at start-up, serves `GET /health`, `GET /metrics` and the
//! `/events` WebSocket on `EDGE_ADDR` (default `0.0.0.0:<GRAPH_SERVICE_TRAEFIK::PORT>`, the port
//! of the generated labels), then serves until SIGTERM or Ctrl-C: in-flight handlers finish
//! (bounded by `KAFKA_DRAIN_TIMEOUT_MS`), their offsets are committed and the member leaves the
//! group. With `GRAPH_AUTH_TOKEN` set, requests need `authorization: Bearer <token>`. Logs
//! carry each message's trace id (the `process` span's `trace_id` field).

pub mod contracts {
    axion_runtime::include_contracts!();
}
mod support {
    pub mod auth;
    #[allow(dead_code)] // shared with the tests, which use more of it
    pub mod graph;
    #[allow(dead_code)]
    pub mod graph_edge;
}

use axion_runtime::kafka::KafkaConfig;
use contracts::axion::graph::v1::GRAPH_SERVICE_TRAEFIK;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = KafkaConfig::from_env()?;
    let edge_addr = std::env::var("EDGE_ADDR")
        .unwrap_or_else(|_| format!("0.0.0.0:{}", GRAPH_SERVICE_TRAEFIK::PORT));
    let listener = tokio::net::TcpListener::bind(&edge_addr)
        .await
        .map_err(|e| format!("EDGE_ADDR {edge_addr}: {e}"))?;
    // GRAPH_AUTH_TOKEN: requests must carry `authorization: Bearer <token>`.
    let token = std::env::var("GRAPH_AUTH_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let running = support::graph_edge::start_with_auth(&config, listener, token.as_deref()).await?;
    tracing::info!(
        brokers = ?config.brokers,
        edge = %running.edge_addr,
        "graph_service ready; SIGTERM or Ctrl-C to stop"
    );
    // Stop on SIGTERM / Ctrl-C; exit non-zero if the Kafka server stops serving on its own,
    // so that an orchestrator replaces the process (its /health says so meanwhile).
    let failure = tokio::select! {
        _ = axion_runtime::shutdown_signal() => None,
        e = running.server.failed() => Some(e),
    };
    running.shutdown().await;
    match failure {
        None => Ok(()),
        Some(e) => {
            tracing::error!(error = %e, "the Kafka server stopped serving; exiting");
            Err(e.into())
        }
    }
}
