//! Static descriptions of generated services: what a transport needs to subscribe, create
//! topics and route, without knowing the service's Rust types.

/// How an rpc travels on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// `ClientKafka.send` / `@MessagePattern`: one reply message.
    RequestReply,
    /// `returns (stream X)`: N reply messages, the last one marked disposed.
    ServerStreaming,
    /// `ClientKafka.emit` / `@EventPattern`: fire-and-forget, nothing is replied.
    Event,
}

impl MethodKind {
    /// Whether the caller waits for replies.
    pub fn expects_reply(self) -> bool {
        !matches!(self, MethodKind::Event)
    }

    /// A short name: `request-reply`, `server-streaming` or `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::RequestReply => "request-reply",
            MethodKind::ServerStreaming => "server-streaming",
            MethodKind::Event => "event",
        }
    }
}

/// One rpc of a service contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodContract {
    /// The proto rpc name, e.g. `CreateProject`.
    pub rpc: &'static str,
    /// The pattern, which is also the request topic, e.g. `axion.graph-service.create-project`.
    pub pattern: &'static str,
    /// The topic replies go to (`<pattern>.reply`); `None` for events, which are never
    /// answered.
    pub reply_topic: Option<&'static str>,
    /// How the rpc travels.
    pub kind: MethodKind,
}

/// A whole service contract, as generated next to the service trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceContract {
    /// The proto full name, e.g. `axion.graph.v1.GraphService`.
    pub proto_name: &'static str,
    /// The Kafka-facing service name, e.g. `graph-service`.
    pub name: &'static str,
    /// Consumer group (and client id) of the service's servers: `<name>-server`.
    pub server_group: &'static str,
    /// Every rpc, in proto order.
    pub methods: &'static [MethodContract],
}

impl ServiceContract {
    /// The rpc whose pattern is `pattern`.
    pub fn method(&self, pattern: &str) -> Option<&'static MethodContract> {
        self.methods.iter().find(|m| m.pattern == pattern)
    }

    /// Every request topic (= pattern) of the service.
    pub fn request_topics(&self) -> impl Iterator<Item = &'static str> {
        self.methods.iter().map(|m| m.pattern)
    }

    /// Every reply topic (rpcs that expect a reply only).
    pub fn reply_topics(&self) -> impl Iterator<Item = &'static str> {
        self.methods.iter().filter_map(|m| m.reply_topic)
    }
}
