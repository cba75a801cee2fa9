//! The Kafka transport: a Rust service as a drop-in peer of NestJS services (`Transport.KAFKA`).
//!
//! Wire format (identical to `@nestjs/microservices`): the request topic is the pattern, the
//! value is the JSON payload; requests carry `kafka_correlationId`, `kafka_replyTopic` and
//! `kafka_replyPartition`; replies go to that topic and partition with the correlation id,
//! `kafka_nest-is-disposed` (one 0x00 byte) on the last message, and `kafka_nest-err` holding
//! the error object. Events carry no reply headers.
//!
//! Replies are never lost to a rebalance: a [`KafkaClient`] does not join a consumer group
//! for its reply topics. It picks one partition per reply topic, assigns it directly
//! (starting at the end offset it read at start-up, before any request is sent), puts it in
//! `kafka_replyPartition`, and routes replies by correlation id. Instances that share a
//! partition each see the other's replies and drop the ones they did not ask for, so more
//! client instances than reply partitions still works; nothing rebalances when an instance
//! joins or leaves. Servers use a consumer group (`<service>-server`) and commit an offset only
//! once its outcome is final: replies or dead-letter copy acknowledged (at-least-once; see
//! [`KafkaServer`] for retries, flow control and rebalances).

mod client;
mod config;
pub mod dead_letters;
pub mod dedup;
pub mod dlq;
pub mod headers;
mod passthrough;
mod probe;
mod producer;
mod recovery;
pub mod retry;
mod server;
mod supervise;
mod topics;
mod transaction;

pub use client::{KafkaClient, MAX_BUFFERED_REPLIES};
pub use config::{
    env, ConfigError, KafkaConfig, KafkaConfigBuilder, OffsetReset, Sasl, SaslMechanism, Secret,
    MAX_IN_FLIGHT_LIMIT,
};
pub use dedup::{DedupLimits, DedupStore, FileDedup, MemoryDedup};
pub use dlq::PoisonReason;
pub use headers::{CORRELATION_ID, NEST_ERR, NEST_IS_DISPOSED, REPLY_PARTITION, REPLY_TOPIC};
pub use passthrough::LibrdkafkaProperties;
pub use retry::RetryPolicy;
pub use server::{KafkaServer, ServerBuilder, ServerHandle};
pub use topics::{ensure_topics, topic_manifest, TopicSpec};

use crate::RpcError;

/// A librdkafka error as an [`RpcError`] (`UNAVAILABLE`: the bus could not be reached).
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::unavailable(format!("{what}: {e}"))
}
