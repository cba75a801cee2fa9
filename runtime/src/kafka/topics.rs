//! The topics a contract needs, and creating them (many clusters do not auto-create).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::{unavailable, KafkaConfig};
use crate::{RpcError, ServiceContract};

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
}

/// Every request, reply and dead-letter (`<pattern>.dlq`) topic of `contracts`, sorted and
/// without duplicates.
pub fn topic_manifest(
    contracts: &[&ServiceContract],
    partitions: i32,
    replication: i32,
) -> Vec<TopicSpec> {
    let mut names: Vec<String> = contracts
        .iter()
        .flat_map(|c| {
            c.request_topics()
                .chain(c.reply_topics())
                .map(str::to_owned)
                .chain(c.request_topics().map(super::dlq::dlq_topic))
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions,
            replication,
        })
        .collect()
}

/// Creates the request, reply and dead-letter topics of `contracts` that do not exist yet (partitions and
/// replication from `config`). Returns the names it created.
pub async fn ensure_topics(
    config: &KafkaConfig,
    contracts: &[&ServiceContract],
) -> Result<Vec<String>, RpcError> {
    let specs = topic_manifest(contracts, config.topic_partitions, config.topic_replication);
    // The admin client never reports a refused login or handshake: check first.
    super::probe::require(config).await?;
    let mut admin_config = config.common();
    config.librdkafka.apply(&mut admin_config);
    let admin: AdminClient<DefaultClientContext> = admin_config
        .create()
        .map_err(|e| unavailable("cannot create a Kafka admin client", e))?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout));
    let results = tokio::time::timeout(config.request_timeout, admin.create_topics(&new, &options))
        .await
        .map_err(|_| {
            RpcError::unavailable(format!(
                "brokers {} did not answer CreateTopics in time",
                config.brokers.join(",")
            ))
        })?
        .map_err(|e| unavailable("CreateTopics failed", e))?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(RpcError::unavailable(format!(
                    "cannot create topic {name}: {code}"
                )))
            }
        }
    }
    if !created.is_empty() {
        tracing::info!(topics = ?created, "created topics");
    }
    Ok(created)
}
