//! An AsyncAPI 3.0 document of the bus: one channel per pattern and per reply topic, `send` and
//! `receive` operations (request/reply linked with `reply`), the NestJS wire headers, Kafka
//! bindings, and JSON Schemas of the payloads exactly as `axion_runtime::json` writes them.
//!
//! Objects are structs (so keys come out in the spec's reading order) holding `BTreeMap`s (so
//! channels, operations and schemas come out sorted): the document is deterministic.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::{Method, MethodKind, Model, Service};

mod document;
mod schema;

pub use document::{Channel, Components, Document, Info, Message, Operation, Ref, Reply, Server};

/// The AsyncAPI version written.
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The version of the Kafka bindings written.
pub const KAFKA_BINDING_VERSION: &str = "0.5.0";
/// The runtime's broker default when `KAFKA_BROKERS` is unset.
pub const DEFAULT_BROKERS: &str = "localhost:9092";

/// What the document says beyond the contracts.
#[derive(Clone, Debug)]
pub struct Options {
    /// `info.version`: the version of the contracts.
    pub api_version: String,
    /// Brokers, `KAFKA_BROKERS`-style (`host:port`, comma-separated): one server each.
    pub brokers: String,
    /// Partitions of every topic (channel binding).
    pub partitions: i32,
    /// Replicas of every topic (channel binding).
    pub replicas: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_version: "1.0.0".to_owned(),
            brokers: DEFAULT_BROKERS.to_owned(),
            partitions: 3,
            replicas: 1,
        }
    }
}

const REQUEST: &str = "request";
const REPLY: &str = "reply";
const EVENT: &str = "event";

/// Builds the document of every service in the model.
pub fn emit(model: &Model, options: &Options) -> Document {
    let mut channels = BTreeMap::new();
    let mut operations = BTreeMap::new();
    let mut messages = BTreeMap::new();
    let mut roots = Vec::new();
    let services: Vec<&Service> = model.packages.iter().flat_map(|p| &p.services).collect();
    for svc in &services {
        for m in &svc.methods {
            roots.push(m.input_proto.clone());
            if m.kind != MethodKind::Event {
                roots.push(m.output_proto.clone());
            }
            add_method(
                svc,
                m,
                options,
                &mut channels,
                &mut operations,
                &mut messages,
            );
        }
    }
    let schemas = schema::schemas(model, roots);
    let brokers: Vec<&str> = options
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    let servers = brokers
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let id = if brokers.len() == 1 {
                "kafka".to_owned()
            } else {
                format!("kafka-{}", i + 1)
            };
            let server = Server {
                host: (*host).to_owned(),
                protocol: "kafka",
                description: format!(
                    "A broker of KAFKA_BROKERS (comma-separated host:port; the runtime's default is {DEFAULT_BROKERS})."
                ),
            };
            (id, server)
        })
        .collect();
    let names: Vec<&str> = services.iter().map(|s| s.full_name.as_str()).collect();
    Document {
        asyncapi: ASYNCAPI_VERSION,
        info: Info {
            title: "Axion Kafka bus".to_owned(),
            version: options.api_version.clone(),
            description: format!(
                "The request/reply and event topics of {}, as NestJS (`@nestjs/microservices` Kafka transport) and axion-runtime peers use them: the topic is the pattern, replies go to `<pattern>.reply`, payloads are JSON as ts-proto objects stringify.",
                names.join(", ")
            ),
        },
        servers,
        default_content_type: "application/json",
        channels,
        operations,
        components: Components { messages, schemas },
    }
}

fn channel_ref(topic: &str) -> Ref {
    Ref::to(format!("#/channels/{topic}"))
}

fn channel_message_ref(topic: &str, id: &str) -> Ref {
    Ref::to(format!("#/channels/{topic}/messages/{id}"))
}

/// A reference to the schema of a proto type, by full name.
fn schema_ref(full_name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{full_name}") })
}

fn channel_binding(topic: &str, options: &Options) -> Value {
    json!({ "kafka": {
        "topic": topic,
        "partitions": options.partitions,
        "replicas": options.replicas,
        "bindingVersion": KAFKA_BINDING_VERSION,
    }})
}

/// Records carry no key (`ClientKafka` and the runtime both send `null`).
fn message_binding() -> Value {
    json!({ "kafka": {
        "key": { "type": "null", "description": "Records have no key." },
        "bindingVersion": KAFKA_BINDING_VERSION,
    }})
}

fn correlation_id() -> Value {
    json!({
        "description": "Copied from the request to its reply messages.",
        "location": "$message.header#/kafka_correlationId",
    })
}

fn request_headers(reply_topic: &str) -> Value {
    json!({
        "type": "object",
        "required": ["kafka_correlationId", "kafka_replyTopic", "kafka_replyPartition"],
        "properties": {
            "kafka_correlationId": {
                "type": "string",
                "description": "Unique per request; the reply carries it back.",
            },
            "kafka_replyTopic": {
                "type": "string",
                "const": reply_topic,
                "description": "Where the reply goes.",
            },
            "kafka_replyPartition": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The reply-topic partition assigned to the calling client instance.",
            },
        },
    })
}

fn reply_headers() -> Value {
    json!({
        "type": "object",
        "required": ["kafka_correlationId"],
        "properties": {
            "kafka_correlationId": {
                "type": "string",
                "description": "The request's kafka_correlationId.",
            },
            "kafka_nest-is-disposed": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1,
                "description": "A single 0x00 byte: the last message of the reply.",
            },
            "kafka_nest-err": {
                "type": "string",
                "description": "Set when the call failed (the payload is then empty): JSON such as {\"status\":\"error\",\"code\":\"PROJECT_EXISTS\",\"message\":\"...\"}, or a bare string for NestJS's no-handler error.",
            },
        },
    })
}

fn add_method(
    svc: &Service,
    m: &Method,
    options: &Options,
    channels: &mut BTreeMap<String, Channel>,
    operations: &mut BTreeMap<String, Operation>,
    messages: &mut BTreeMap<String, Message>,
) {
    let title = format!("{}.{}", svc.proto_name, m.proto_name);
    let id = format!("{}.{}", svc.full_name, m.proto_name);
    let request_key = add_request(m, &title, &id, options, channels, messages);
    let reply = m
        .reply_topic
        .as_ref()
        .map(|topic| add_reply(m, topic, &title, &id, options, channels, messages));
    add_operations(svc, m, title, &id, request_key, reply, operations);
}

/// The request (or event) message of `m` and its channel, the pattern; returns its key.
fn add_request(
    m: &Method,
    title: &str,
    id: &str,
    options: &Options,
    channels: &mut BTreeMap<String, Channel>,
    messages: &mut BTreeMap<String, Message>,
) -> &'static str {
    let is_event = m.kind == MethodKind::Event;
    let request_key = if is_event { EVENT } else { REQUEST };
    let request_id = format!("{id}.{request_key}");
    messages.insert(
        request_id.clone(),
        Message {
            name: request_id.clone(),
            title: format!("{title} {request_key}"),
            summary: if is_event {
                format!("{} (ClientKafka.emit; no reply)", m.input_proto)
            } else {
                format!("{} (ClientKafka.send)", m.input_proto)
            },
            content_type: "application/json",
            correlation_id: (!is_event).then(correlation_id),
            headers: m.reply_topic.as_deref().map(request_headers),
            payload: schema_ref(&m.input_proto),
            bindings: message_binding(),
        },
    );
    let channel = channels
        .entry(m.pattern.clone())
        .or_insert_with(|| Channel {
            address: m.pattern.clone(),
            description: String::new(),
            messages: BTreeMap::new(),
            bindings: channel_binding(&m.pattern, options),
        });
    channel.description = format!(
        "{} of {} ({}).",
        if is_event { "Events" } else { "Requests" },
        id,
        m.kind.as_str()
    );
    channel.messages.insert(
        request_key.to_owned(),
        Ref::to(format!("#/components/messages/{request_id}")),
    );
    request_key
}

/// The reply message of `m` and its channel, `reply_topic`; returns the operations' reply.
fn add_reply(
    m: &Method,
    reply_topic: &str,
    title: &str,
    id: &str,
    options: &Options,
    channels: &mut BTreeMap<String, Channel>,
    messages: &mut BTreeMap<String, Message>,
) -> Reply {
    let reply_id = format!("{id}.{REPLY}");
    let streaming = m.kind == MethodKind::ServerStreaming;
    messages.insert(
        reply_id.clone(),
        Message {
            name: reply_id.clone(),
            title: format!("{title} reply"),
            summary: if streaming {
                format!(
                    "{} (one message per item; the last one is marked kafka_nest-is-disposed)",
                    m.output_proto
                )
            } else {
                format!(
                    "{} (one message, marked kafka_nest-is-disposed)",
                    m.output_proto
                )
            },
            content_type: "application/json",
            correlation_id: Some(correlation_id()),
            headers: Some(reply_headers()),
            payload: schema_ref(&m.output_proto),
            bindings: message_binding(),
        },
    );
    let channel = channels
        .entry(reply_topic.to_owned())
        .or_insert_with(|| Channel {
            address: reply_topic.to_owned(),
            description: String::new(),
            messages: BTreeMap::new(),
            bindings: channel_binding(reply_topic, options),
        });
    channel.description =
        format!("Replies of {id}, to the partition named by the request's kafka_replyPartition.");
    channel.messages.insert(
        REPLY.to_owned(),
        Ref::to(format!("#/components/messages/{reply_id}")),
    );
    Reply {
        channel: channel_ref(reply_topic),
        messages: vec![channel_message_ref(reply_topic, REPLY)],
    }
}

/// The send (caller) and receive (server) operations of `m`.
fn add_operations(
    svc: &Service,
    m: &Method,
    title: String,
    id: &str,
    request_key: &str,
    reply: Option<Reply>,
    operations: &mut BTreeMap<String, Operation>,
) {
    let description = (!m.docs.is_empty()).then(|| m.docs.join("\n"));
    let request_ref = channel_message_ref(&m.pattern, request_key);
    let (send_summary, receive_summary) = if m.kind == MethodKind::Event {
        (
            format!("Emit {title} (ClientKafka.emit)."),
            format!(
                "Handle {title} (@EventPattern) in group {}.",
                svc.server_group
            ),
        )
    } else {
        (
            format!("Call {title} (ClientKafka.send) and wait for the reply."),
            format!(
                "Serve {title} (@MessagePattern) in group {} and reply.",
                svc.server_group
            ),
        )
    };
    operations.insert(
        format!("{id}.send"),
        Operation {
            action: "send",
            channel: channel_ref(&m.pattern),
            title: title.clone(),
            summary: send_summary,
            description: description.clone(),
            messages: vec![request_ref.clone()],
            reply: reply.as_ref().map(|r| Reply {
                channel: r.channel.clone(),
                messages: r.messages.clone(),
            }),
            bindings: None,
            kind: m.kind.as_str(),
        },
    );
    operations.insert(
        format!("{id}.receive"),
        Operation {
            action: "receive",
            channel: channel_ref(&m.pattern),
            title,
            summary: receive_summary,
            description,
            messages: vec![request_ref],
            reply,
            bindings: Some(json!({ "kafka": {
                "groupId": { "type": "string", "enum": [svc.server_group] },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }})),
            kind: m.kind.as_str(),
        },
    );
}
