//! Serves the generated `GraphService` over Kafka, as a peer of the stack's NestJS services.
//!
//! ```text
//! KAFKA_BROKERS=127.0.0.1:9092 cargo run --example graph_service
//! ```
//! Creates the contract's topics at start-up, then serves until Ctrl-C (graceful shutdown).

pub mod contracts {
    axion_runtime::include_contracts!();
}
mod support {
    pub mod graph;
}

use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer};
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use contracts::axion::graph::v1::GRAPH_SERVICE_CONTRACT;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = KafkaConfig::from_env()?;
    ensure_topics(&config, &[&GRAPH_SERVICE_CONTRACT]).await?;
    let events = KafkaClient::connect(&config, &[]).await?;
    let graph = support::graph::Graph::emitting_to(GraphServiceClient::new(events.client()));
    let server = KafkaServer::start(&config, GraphServiceServer::new(graph)).await?;
    tracing::info!(brokers = ?config.brokers, "graph_service ready; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
