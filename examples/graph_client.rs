//! Calls a running `GraphService` (the Rust example or a NestJS one) over Kafka.
//!
//! ```text
//! KAFKA_BROKERS=127.0.0.1:9092 cargo run --example graph_client -- my-project
//! ```

pub mod contracts {
    axion_runtime::include_contracts!();
}

use std::time::Duration;

use axion_runtime::futures::StreamExt as _;
use axion_runtime::kafka::{KafkaClient, KafkaConfig};
use axion_runtime::CallOptions;
use contracts::axion::graph::v1::graph_service_client::GraphServiceClient;
use contracts::axion::graph::v1::{
    CreateProjectRequest, GetProjectRequest, ListProjectsRequest, GRAPH_SERVICE_CONTRACT,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "demo".to_owned());
    let config = KafkaConfig::from_env()?;
    let kafka = KafkaClient::connect(&config, &[&GRAPH_SERVICE_CONTRACT]).await?;
    let graph = GraphServiceClient::new(kafka.client());

    let created = graph
        .create_project_with(
            &CreateProjectRequest {
                name: name.clone(),
                description: "made by graph_client".into(),
                ..Default::default()
            },
            CallOptions::new().timeout(Duration::from_secs(5)),
        )
        .await;
    match &created {
        Ok(reply) => {
            println!(
                "created: {}",
                serde_json::to_string(&reply.get_ref().project)?
            );
            // The reply names the server's processing span: its trace is this call's.
            if let Some(parent) = reply.headers().get_str("traceparent") {
                println!("traceparent of the reply: {parent}");
            }
        }
        Err(e) => println!("create failed: {e}"),
    }
    if let Err(e) = graph
        .create_project(&CreateProjectRequest {
            name,
            ..Default::default()
        })
        .await
    {
        println!("second create: {e}");
    }
    if let Err(e) = graph
        .get_project(&GetProjectRequest {
            id: "no-such-id".into(),
        })
        .await
    {
        println!("get unknown: {e}");
    }
    let mut stream = graph.list_projects(&ListProjectsRequest::default()).await?;
    while let Some(project) = stream.next().await {
        let project = project?;
        println!("listed: {} {}", project.id, project.name);
    }
    Ok(())
}
