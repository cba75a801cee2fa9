//! The AsyncAPI 3.0 objects the document is made of, in the spec's reading order (serde writes
//! struct fields in declaration order).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// The document.
#[derive(Debug, Serialize)]
pub struct Document {
    /// `3.0.0`.
    pub asyncapi: &'static str,
    /// Title, version, description.
    pub info: Info,
    /// One server per broker.
    pub servers: BTreeMap<String, Server>,
    /// `application/json`.
    #[serde(rename = "defaultContentType")]
    pub default_content_type: &'static str,
    /// Channel id (= the topic) → channel.
    pub channels: BTreeMap<String, Channel>,
    /// Operation id → operation.
    pub operations: BTreeMap<String, Operation>,
    /// Messages and schemas.
    pub components: Components,
}

/// `info`.
#[derive(Debug, Serialize)]
pub struct Info {
    /// Title.
    pub title: String,
    /// Version of the contracts.
    pub version: String,
    /// What the document covers.
    pub description: String,
}

/// A Kafka broker.
#[derive(Debug, Serialize)]
pub struct Server {
    /// `host:port`.
    pub host: String,
    /// `kafka`.
    pub protocol: &'static str,
    /// Where the value comes from.
    pub description: String,
}

/// A `$ref`.
#[derive(Debug, Serialize, Clone)]
pub struct Ref {
    /// The JSON pointer.
    #[serde(rename = "$ref")]
    pub target: String,
}

impl Ref {
    /// A reference to `target` (`#/channels/...`).
    pub(super) fn to(target: String) -> Self {
        Ref { target }
    }
}

/// A topic.
#[derive(Debug, Serialize)]
pub struct Channel {
    /// The topic.
    pub address: String,
    /// What travels on it.
    pub description: String,
    /// Message id → `$ref` to `components.messages`.
    pub messages: BTreeMap<String, Ref>,
    /// Kafka channel binding.
    pub bindings: Value,
}

/// A send or receive operation.
#[derive(Debug, Serialize)]
pub struct Operation {
    /// `send` or `receive`.
    pub action: &'static str,
    /// The request (or event) channel.
    pub channel: Ref,
    /// `Service.Rpc`.
    pub title: String,
    /// Who does what.
    pub summary: String,
    /// The rpc's proto comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The channel's messages this operation moves.
    pub messages: Vec<Ref>,
    /// Where replies go (request/reply and server-streaming rpcs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// Kafka operation binding (the consumer group of the serving side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Value>,
    /// `request-reply`, `server-streaming` or `event`.
    #[serde(rename = "x-axion-kind")]
    pub kind: &'static str,
}

/// An operation's reply.
#[derive(Debug, Serialize)]
pub struct Reply {
    /// The reply channel.
    pub channel: Ref,
    /// The reply channel's messages.
    pub messages: Vec<Ref>,
}

/// `components`.
#[derive(Debug, Serialize)]
pub struct Components {
    /// Message id → message.
    pub messages: BTreeMap<String, Message>,
    /// Proto full name → JSON Schema.
    pub schemas: BTreeMap<String, Value>,
}

/// A Kafka record: headers, payload, key.
#[derive(Debug, Serialize)]
pub struct Message {
    /// Message id.
    pub name: String,
    /// Human title.
    pub title: String,
    /// What it is.
    pub summary: String,
    /// `application/json`.
    #[serde(rename = "contentType")]
    pub content_type: &'static str,
    /// `kafka_correlationId`, for request and reply messages.
    #[serde(rename = "correlationId", skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Value>,
    /// The NestJS wire headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    /// `$ref` to the payload schema.
    pub payload: Value,
    /// Kafka message binding (the key).
    pub bindings: Value,
}
