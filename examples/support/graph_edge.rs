//! The example `GraphService` with its edge: served over Kafka, plus `/health`, `/metrics` and
//! the `/events` WebSocket (every `ProjectCreated` as JSON) where its Traefik labels point.
//! Shared by `examples/graph_service.rs` and the Traefik tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axion_runtime::edge::kafka::{BrokerProbe, EventFeed};
use axion_runtime::edge::{Edge, Events};
use axion_runtime::kafka::{ensure_topics, KafkaClient, KafkaConfig, KafkaServer, ServerHandle};
use tokio::sync::oneshot;

use super::auth::BearerAuth;
use super::graph::Graph;
use crate::contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use crate::contracts::axion::graph::v1::graph_service_server::GraphServiceServer;
use crate::contracts::axion::graph::v1::{
    GRAPH_SERVICE_CONTRACT, GRAPH_SERVICE_TRAEFIK, GRAPH_SERVICE_TRUSTED_ORIGINS,
};

/// A running `GraphService`: the Kafka server, the event feed and the edge.
pub struct Running {
    /// Where the edge listens.
    pub edge_addr: SocketAddr,
    /// The Kafka server (also the edge's consumer readiness probe).
    pub server: Arc<ServerHandle>,
    feed: EventFeed,
    emitter: KafkaClient,
    stop: oneshot::Sender<()>,
    edge: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The whole stop's budget (`KAFKA_DRAIN_TIMEOUT_MS`).
    budget: std::time::Duration,
}

/// Creates the contract's topics, serves `GraphService` over Kafka and its edge on `listener`.
pub async fn start(
    config: &KafkaConfig,
    listener: tokio::net::TcpListener,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    start_with_auth(config, listener, None).await
}

/// [`start`], with requests required to carry `authorization: Bearer <token>` when a token is
/// given (the [`BearerAuth`] middleware).
pub async fn start_with_auth(
    config: &KafkaConfig,
    listener: tokio::net::TcpListener,
    token: Option<&str>,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    ensure_topics(config, &[&GRAPH_SERVICE_CONTRACT]).await?;
    let emitter = KafkaClient::connect(config, &[]).await?;
    let graph = Graph::emitting_to(GraphServiceClient::new(emitter.client()));
    let server = GraphServiceServer::new(graph);
    let server = Arc::new(match token {
        Some(token) => {
            let guarded = axion_runtime::middleware::layered(server, BearerAuth::new(token));
            KafkaServer::start(config, guarded).await?
        }
        None => KafkaServer::start(config, server).await?,
    });
    // Every instance pushes every ProjectCreated: the feed reads the event topic in no group.
    let events = Events::new(256);
    let feed = EventFeed::start(config, &GRAPH_SERVICE_CONTRACT, events.clone()).await?;
    let edge = Edge::new(GRAPH_SERVICE_TRUSTED_ORIGINS)
        .health_path(GRAPH_SERVICE_TRAEFIK::HEALTH_PATH)
        .path_prefix(GRAPH_SERVICE_TRAEFIK::PATH_PREFIX)
        .check("kafka-consumer", server.clone())
        .check(
            "kafka-producer",
            BrokerProbe::new(config, &GRAPH_SERVICE_CONTRACT)?,
        )
        .check("event-feed", feed.clone())
        .events(events.clone());
    let edge_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let edge = tokio::spawn(edge.serve(listener, async move {
        let _ = stopped.await;
    }));
    tracing::info!(%edge_addr, "edge listening");
    Ok(Running {
        edge_addr,
        server,
        feed,
        emitter,
        stop,
        edge,
        budget: config.drain_timeout,
    })
}

impl Running {
    /// Stops the edge (WebSocket clients get a close frame) and the Kafka server gracefully,
    /// together, within the drain timeout (`KAFKA_DRAIN_TIMEOUT_MS`) from this call: what a
    /// SIGTERM from Kubernetes gets before its SIGKILL (30 s by default) must fit.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + self.budget;
        let _ = self.stop.send(());
        let edge = async {
            match tokio::time::timeout_at(deadline, self.edge).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "edge stopped with an error"),
                Err(_) => tracing::warn!("edge connections still open at the end of the drain"),
                _ => {}
            }
        };
        let server = async {
            if let Some(server) = Arc::into_inner(self.server) {
                server.shutdown().await;
            }
        };
        tokio::join!(edge, server);
        drop(self.feed);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let _ = self.emitter.flush(left);
    }
}
