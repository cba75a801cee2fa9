//! Kafka settings, from the stack's environment variables or a builder, validated once.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::passthrough::LibrdkafkaProperties;
use super::retry::RetryPolicy;

/// A configuration value that is wrong, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The variable or builder setting (`KAFKA_SASL_MECHANISM`, `request_timeout`).
    pub name: String,
    /// What is wrong with it (never the value of a secret).
    pub problem: String,
}

fn bad(name: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        problem: problem.into(),
    }
}

/// A password: kept out of `Debug`, `Display` and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for handing to librdkafka.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// SASL mechanisms the stack uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `scram-sha-512` (the stack's default).
    ScramSha512,
    /// `scram-sha-256`.
    ScramSha256,
    /// `plain`.
    Plain,
}

impl SaslMechanism {
    /// Parses the stack's spelling (case-insensitive): `scram-sha-512`, `scram-sha-256`, `plain`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "scram-sha-512" => Some(SaslMechanism::ScramSha512),
            "scram-sha-256" => Some(SaslMechanism::ScramSha256),
            "plain" => Some(SaslMechanism::Plain),
            _ => None,
        }
    }

    pub(crate) fn librdkafka_name(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// SASL credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sasl {
    /// Mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password (redacted in `Debug`).
    pub password: Secret,
}

/// Where a consumer group that has no committed offset for a partition starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// At the end: only what is produced from now on (kafkajs/NestJS's default,
    /// `fromBeginning: false`). A new or renamed server group does not replay the topic's
    /// whole retention.
    #[default]
    Latest,
    /// At the beginning: everything the topic still holds.
    Earliest,
}

impl OffsetReset {
    /// Parses `latest` or `earliest` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "latest" | "end" | "largest" => Some(OffsetReset::Latest),
            "earliest" | "beginning" | "smallest" => Some(OffsetReset::Earliest),
            _ => None,
        }
    }

    /// librdkafka's `auto.offset.reset` value.
    pub(crate) fn librdkafka_name(self) -> &'static str {
        match self {
            OffsetReset::Latest => "latest",
            OffsetReset::Earliest => "earliest",
        }
    }
}

/// The most handlers a server may run at once (`KAFKA_MAX_IN_FLIGHT`).
pub const MAX_IN_FLIGHT_LIMIT: usize = 65_536;

/// Everything the Kafka transport needs. Build it with [`KafkaConfig::from_env`] or
/// [`KafkaConfig::builder`]; both validate.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port` each.
    pub brokers: Vec<String>,
    /// SASL, when the cluster needs it.
    pub sasl: Option<Sasl>,
    /// TLS to the brokers.
    pub ssl: bool,
    /// CA bundle for TLS.
    pub ssl_ca_location: Option<PathBuf>,
    /// Client id / group stem of a caller; `-client` is appended like NestJS does.
    /// Default: `axion`.
    pub client_id: String,
    /// Consumer group of servers, overriding the contract's `<service>-server`. Like NestJS,
    /// `-server` is appended to a configured value.
    pub server_group: Option<String>,
    /// Default timeout of a call.
    pub request_timeout: Duration,
    /// How long the broker may hold a fetch (`fetch.wait.max.ms`).
    pub fetch_wait: Duration,
    /// Consumer session timeout.
    pub session_timeout: Duration,
    /// Partitions of topics created by `ensure_topics`.
    pub topic_partitions: i32,
    /// Replication factor of topics created by `ensure_topics`.
    pub topic_replication: i32,
    /// Messages a server handles at once (across its partitions). 1 keeps strict order.
    pub max_in_flight: usize,
    /// Messages a server handles at once from one partition (at most `max_in_flight`).
    /// The default, 1 (NestJS's too), keeps each partition in order — so one key's messages
    /// are handled in the order they were sent — while partitions run in parallel; raise it
    /// for throughput where order does not matter.
    pub max_in_flight_per_partition: usize,
    /// Largest request payload a server accepts; bigger ones are poison (error reply or
    /// dead-letter topic), never handed to the handler.
    pub max_message_bytes: usize,
    /// Bytes of consumed records a server holds at most, its own queues and librdkafka's
    /// prefetch together (default 64 MiB): half for records queued and running in its lanes
    /// (past it, every partition pauses until they drain to half), a quarter for librdkafka's
    /// prefetch queue (`queued.max.messages.kbytes`) and a quarter per fetch
    /// (`fetch.max.bytes`). A single record larger than all that is still handled, alone.
    pub max_buffered_bytes: usize,
    /// Producer retries of a failed send (bounded, with backoff).
    pub send_retries: u32,
    /// Backoff between producer retries.
    pub retry_backoff: Duration,
    /// Where a server group starts in a partition it has no committed offset for.
    pub auto_offset_reset: OffsetReset,
    /// Longest a server handler may run (for a server stream: may wait for its next item)
    /// before it is cancelled and fails with `DEADLINE_EXCEEDED`.
    pub handler_timeout: Duration,
    /// How long running handlers may finish when the server stops or loses partitions in a
    /// rebalance, before they are cancelled (their messages are then handled again by the
    /// next owner).
    pub drain_timeout: Duration,
    /// How long messages of a partition of a server's topics may wait while the group's
    /// committed offset there stays put before the server warns that nobody consumes it
    /// (unowned, or its owner stuck or never committing).
    pub stall_warning: Duration,
    /// What a server does when a handler fails.
    pub retry: RetryPolicy,
    /// Topics a server may reply to besides its contract's `<pattern>.reply` topics. A request
    /// naming any other reply topic is dead-lettered (`reply-topic-not-allowed`), never
    /// answered: a caller cannot make the service write into its own event topics.
    pub allowed_reply_topics: Vec<String>,
    /// librdkafka's `partition.assignment.strategy` for server groups. Default
    /// `cooperative-sticky`: a rebalance only moves the partitions that change owner.
    pub assignment_strategy: String,
    /// Other librdkafka properties, set on every client after the runtime's own (validated
    /// by librdkafka; runtime-owned names refused; secret values redacted in `Debug`).
    pub librdkafka: LibrdkafkaProperties,
    /// Exactly-once serving (opt-in): with a transactional id, a server handles one message
    /// at a time and puts its replies, its dead-letter copies, the events its handler emits
    /// through the runtime and its offset commit in one Kafka transaction. The id must be
    /// stable for an instance across restarts (a pod name) and unique among live instances:
    /// a restarted instance fences its predecessor's unfinished transaction.
    pub transactional_id: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: vec!["localhost:9092".to_owned()],
            sasl: None,
            ssl: false,
            ssl_ca_location: None,
            client_id: "axion".to_owned(),
            server_group: None,
            request_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(10),
            session_timeout: Duration::from_secs(10),
            topic_partitions: 3,
            topic_replication: 1,
            max_in_flight: 64,
            max_in_flight_per_partition: 1,
            max_message_bytes: 1_000_000,
            max_buffered_bytes: 64 << 20,
            send_retries: 5,
            retry_backoff: Duration::from_millis(100),
            auto_offset_reset: OffsetReset::Latest,
            handler_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            stall_warning: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            allowed_reply_topics: Vec::new(),
            assignment_strategy: DEFAULT_ASSIGNMENT_STRATEGY.to_owned(),
            librdkafka: LibrdkafkaProperties::default(),
            transactional_id: None,
        }
    }
}

/// Default `partition.assignment.strategy` of server groups.
pub const DEFAULT_ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";

/// The environment variables [`KafkaConfig::from_env`] reads.
pub mod env {
    /// Comma-separated brokers. Default `localhost:9092`.
    pub const BROKERS: &str = "KAFKA_BROKERS";
    /// SASL user; SASL is on when set.
    pub const SASL_USERNAME: &str = "KAFKA_SASL_USERNAME";
    /// SASL password.
    pub const SASL_PASSWORD: &str = "KAFKA_SASL_PASSWORD";
    /// `scram-sha-512` (default), `scram-sha-256` or `plain`.
    pub const SASL_MECHANISM: &str = "KAFKA_SASL_MECHANISM";
    /// `true` for TLS.
    pub const SSL: &str = "KAFKA_SSL";
    /// CA bundle path for TLS.
    pub const SSL_CA_LOCATION: &str = "KAFKA_SSL_CA_LOCATION";
    /// Client id stem.
    pub const CLIENT_ID: &str = "KAFKA_CLIENT_ID";
    /// Server consumer group stem (`-server` is appended).
    pub const GROUP_ID: &str = "KAFKA_GROUP_ID";
    /// Default call timeout, in ms (> 0).
    pub const REQUEST_TIMEOUT_MS: &str = "KAFKA_REQUEST_TIMEOUT_MS";
    /// Fetch wait, in ms (> 0).
    pub const FETCH_WAIT_MS: &str = "KAFKA_FETCH_WAIT_MS";
    /// Consumer session timeout, in ms (> 0).
    pub const SESSION_TIMEOUT_MS: &str = "KAFKA_SESSION_TIMEOUT_MS";
    /// Partitions of created topics (> 0).
    pub const TOPIC_PARTITIONS: &str = "KAFKA_TOPIC_PARTITIONS";
    /// Replication of created topics (> 0).
    pub const TOPIC_REPLICATION: &str = "KAFKA_TOPIC_REPLICATION";
    /// Messages a server handles at once (> 0).
    pub const MAX_IN_FLIGHT: &str = "KAFKA_MAX_IN_FLIGHT";
    /// Messages a server handles at once from one partition (> 0).
    pub const MAX_IN_FLIGHT_PER_PARTITION: &str = "KAFKA_MAX_IN_FLIGHT_PER_PARTITION";
    /// Largest payload a server accepts, in bytes (> 0).
    pub const MAX_MESSAGE_BYTES: &str = "KAFKA_MAX_MESSAGE_BYTES";
    /// Bytes of consumed records a server holds at most (> 0; default 67108864).
    pub const MAX_BUFFERED_BYTES: &str = "KAFKA_MAX_BUFFERED_BYTES";
    /// `latest` (default) or `earliest`: where a new server group starts.
    pub const AUTO_OFFSET_RESET: &str = "KAFKA_AUTO_OFFSET_RESET";
    /// Longest a server handler may run, in ms (> 0; default 30000).
    pub const HANDLER_TIMEOUT_MS: &str = "KAFKA_HANDLER_TIMEOUT_MS";
    /// Grace for running handlers on shutdown and revocation, in ms (> 0; default 10000).
    pub const DRAIN_TIMEOUT_MS: &str = "KAFKA_DRAIN_TIMEOUT_MS";
    /// Server: warn about a partition nobody consumes after this many ms.
    pub const STALL_WARNING_MS: &str = "KAFKA_STALL_WARNING_MS";
    /// Attempts of a failed handler, the first included (1–1000; default 5).
    pub const RETRY_ATTEMPTS: &str = "KAFKA_RETRY_ATTEMPTS";
    /// First backoff between attempts, in ms (> 0; default 200).
    pub const RETRY_BACKOFF_MS: &str = "KAFKA_RETRY_BACKOFF_MS";
    /// Longest backoff between attempts, in ms (> 0; default 10000).
    pub const RETRY_MAX_BACKOFF_MS: &str = "KAFKA_RETRY_MAX_BACKOFF_MS";
    /// Comma-separated retriable codes (default `UNAVAILABLE,DEADLINE_EXCEEDED,INTERNAL`).
    pub const RETRY_CODES: &str = "KAFKA_RETRY_CODES";
    /// `true` to retry failed requests too before replying with the error (default false).
    pub const RETRY_REQUESTS: &str = "KAFKA_RETRY_REQUESTS";
    /// Comma-separated extra topics a server may reply to.
    pub const REPLY_TOPICS: &str = "KAFKA_REPLY_TOPICS";
    /// librdkafka `partition.assignment.strategy` of server groups (default
    /// `cooperative-sticky`).
    pub const PARTITION_ASSIGNMENT_STRATEGY: &str = "KAFKA_PARTITION_ASSIGNMENT_STRATEGY";
    /// Any other librdkafka properties: `key=value` items separated by `;` or newlines
    /// (see [`LibrdkafkaProperties`](super::LibrdkafkaProperties)).
    pub const LIBRDKAFKA: &str = "KAFKA_LIBRDKAFKA";
    /// Server: exactly-once serving with this transactional id (stable per instance).
    pub const TRANSACTIONAL_ID: &str = "KAFKA_TRANSACTIONAL_ID";
}

impl KafkaConfig {
    /// Reads the stack's variables (see [`env`](mod@env)); unset ones keep their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`KafkaConfig::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = KafkaConfig::builder();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get(env::BROKERS) {
            b = b.brokers(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
            b.source.brokers = env::BROKERS;
        }
        let user = get(env::SASL_USERNAME);
        let pass = lookup(env::SASL_PASSWORD);
        let mech = get(env::SASL_MECHANISM);
        match (user, pass) {
            (Some(u), Some(p)) => {
                let mechanism = match mech {
                    None => SaslMechanism::ScramSha512,
                    Some(m) => SaslMechanism::parse(&m).ok_or_else(|| {
                        bad(env::SASL_MECHANISM, format!("unknown mechanism {m:?}; use scram-sha-512, scram-sha-256 or plain"))
                    })?,
                };
                b = b.sasl(mechanism, u, Secret::new(p));
                b.source.sasl = env::SASL_MECHANISM;
            }
            (Some(_), None) => {
                return Err(bad(
                    env::SASL_PASSWORD,
                    "must be set when KAFKA_SASL_USERNAME is",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    env::SASL_USERNAME,
                    "must be set when KAFKA_SASL_PASSWORD is",
                ))
            }
            (None, None) => {
                if let Some(m) = mech {
                    if SaslMechanism::parse(&m).is_none() {
                        return Err(bad(env::SASL_MECHANISM, format!("unknown mechanism {m:?}; use scram-sha-512, scram-sha-256 or plain")));
                    }
                }
            }
        }
        if let Some(v) = get(env::SSL) {
            b = b.ssl(parse_bool(env::SSL, &v)?);
        }
        if let Some(v) = get(env::SSL_CA_LOCATION) {
            b = b.ssl_ca_location(v);
            b.source.ssl_ca_location = env::SSL_CA_LOCATION;
        }
        if let Some(v) = get(env::CLIENT_ID) {
            b = b.client_id(v);
        }
        if let Some(v) = get(env::GROUP_ID) {
            b = b.server_group(v);
        }
        if let Some(v) = get(env::REQUEST_TIMEOUT_MS) {
            b = b.request_timeout_ms(parse_int(env::REQUEST_TIMEOUT_MS, &v)?);
            b.source.request_timeout = env::REQUEST_TIMEOUT_MS;
        }
        if let Some(v) = get(env::FETCH_WAIT_MS) {
            b = b.fetch_wait_ms(parse_int(env::FETCH_WAIT_MS, &v)?);
            b.source.fetch_wait = env::FETCH_WAIT_MS;
        }
        if let Some(v) = get(env::SESSION_TIMEOUT_MS) {
            b = b.session_timeout_ms(parse_int(env::SESSION_TIMEOUT_MS, &v)?);
            b.source.session_timeout = env::SESSION_TIMEOUT_MS;
        }
        if let Some(v) = get(env::TOPIC_PARTITIONS) {
            b = b.topic_partitions(parse_int(env::TOPIC_PARTITIONS, &v)?);
            b.source.partitions = env::TOPIC_PARTITIONS;
        }
        if let Some(v) = get(env::TOPIC_REPLICATION) {
            b = b.topic_replication(parse_int(env::TOPIC_REPLICATION, &v)?);
            b.source.replication = env::TOPIC_REPLICATION;
        }
        if let Some(v) = get(env::MAX_IN_FLIGHT) {
            b = b.max_in_flight(parse_int(env::MAX_IN_FLIGHT, &v)?);
            b.source.max_in_flight = env::MAX_IN_FLIGHT;
        }
        if let Some(v) = get(env::MAX_IN_FLIGHT_PER_PARTITION) {
            b = b.max_in_flight_per_partition(parse_int(env::MAX_IN_FLIGHT_PER_PARTITION, &v)?);
            b.source.max_in_flight_per_partition = env::MAX_IN_FLIGHT_PER_PARTITION;
        }
        if let Some(v) = get(env::MAX_MESSAGE_BYTES) {
            b = b.max_message_bytes(parse_int(env::MAX_MESSAGE_BYTES, &v)?);
            b.source.max_message_bytes = env::MAX_MESSAGE_BYTES;
        }
        if let Some(v) = get(env::MAX_BUFFERED_BYTES) {
            b = b.max_buffered_bytes(parse_int(env::MAX_BUFFERED_BYTES, &v)?);
            b.source.max_buffered_bytes = env::MAX_BUFFERED_BYTES;
        }
        if let Some(v) = get(env::AUTO_OFFSET_RESET) {
            let reset = OffsetReset::parse(&v).ok_or_else(|| {
                bad(
                    env::AUTO_OFFSET_RESET,
                    format!("expected latest or earliest, got {v:?}"),
                )
            })?;
            b = b.auto_offset_reset(reset);
        }
        if let Some(v) = get(env::HANDLER_TIMEOUT_MS) {
            b = b.handler_timeout_ms(parse_int(env::HANDLER_TIMEOUT_MS, &v)?);
            b.source.handler_timeout = env::HANDLER_TIMEOUT_MS;
        }
        if let Some(v) = get(env::DRAIN_TIMEOUT_MS) {
            b = b.drain_timeout_ms(parse_int(env::DRAIN_TIMEOUT_MS, &v)?);
            b.source.drain_timeout = env::DRAIN_TIMEOUT_MS;
        }
        if let Some(v) = get(env::STALL_WARNING_MS) {
            b = b.stall_warning_ms(parse_int(env::STALL_WARNING_MS, &v)?);
            b.source.stall_warning = env::STALL_WARNING_MS;
        }
        let mut retry = RetryPolicy::default();
        let mut retry_source = "retry";
        if let Some(v) = get(env::RETRY_ATTEMPTS) {
            let n = parse_int(env::RETRY_ATTEMPTS, &v)?;
            retry.max_attempts = u32::try_from(n)
                .map_err(|_| bad(env::RETRY_ATTEMPTS, format!("must be 1–1000, got {n}")))?;
            retry_source = env::RETRY_ATTEMPTS;
        }
        for (name, field) in [
            (env::RETRY_BACKOFF_MS, &mut retry.initial_backoff),
            (env::RETRY_MAX_BACKOFF_MS, &mut retry.max_backoff),
        ] {
            if let Some(v) = get(name) {
                let ms = parse_int(name, &v)?;
                if ms <= 0 {
                    return Err(bad(name, format!("must be greater than zero, got {ms}")));
                }
                *field = Duration::from_millis(ms as u64);
                retry_source = name;
            }
        }
        if let Some(v) = get(env::RETRY_CODES) {
            retry.retriable = list(&v).map(|c| c.to_ascii_uppercase()).collect();
            retry_source = env::RETRY_CODES;
        }
        if let Some(v) = get(env::RETRY_REQUESTS) {
            retry.retry_requests = parse_bool(env::RETRY_REQUESTS, &v)?;
        }
        b.source.retry = retry_source;
        b = b.retry(retry);
        if let Some(v) = get(env::REPLY_TOPICS) {
            b = b.allowed_reply_topics(list(&v).map(str::to_owned));
        }
        if let Some(v) = get(env::PARTITION_ASSIGNMENT_STRATEGY) {
            b = b.assignment_strategy(v.trim());
        }
        if let Some(v) = get(env::TRANSACTIONAL_ID) {
            b = b.transactional_id(v.trim());
        }
        if let Some(v) = get(env::LIBRDKAFKA) {
            for (key, value) in LibrdkafkaProperties::parse(&v)?.iter() {
                b = b.librdkafka(key, value);
            }
            b.source.librdkafka = env::LIBRDKAFKA;
        }
        b.build()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> KafkaConfigBuilder {
        KafkaConfigBuilder {
            raw: Raw::default(),
            source: Source::default(),
        }
    }

    /// `<client_id>-client`, NestJS's postfix rule.
    pub fn client_group(&self) -> String {
        format!("{}-client", self.client_id)
    }

    /// An idempotent `acks=all` producer with bounded retries, as `client_id`: what clients and
    /// servers both send with (each adds its own linger and size settings).
    pub(crate) fn reliable_producer(&self, client_id: &str) -> rdkafka::ClientConfig {
        let mut c = self.common();
        c.set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.send.max.retries", self.send_retries.to_string())
            .set(
                "retry.backoff.ms",
                self.retry_backoff.as_millis().to_string(),
            )
            .set(
                "message.timeout.ms",
                self.request_timeout.as_millis().max(1000).to_string(),
            );
        c
    }

    /// librdkafka settings shared by producers, consumers and admin clients.
    pub(crate) fn common(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","));
        let protocol = match (self.sasl.is_some(), self.ssl) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanisms", sasl.mechanism.librdkafka_name());
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", sasl.password.expose());
        }
        if let Some(ca) = &self.ssl_ca_location {
            c.set("ssl.ca.location", ca.display().to_string());
        }
        // Without this, librdkafka retries a missing broker forever and a caller hangs.
        c.set("socket.connection.setup.timeout.ms", "5000");
        c.set("log_level", "3");
        c
    }
}

/// The non-empty items of a comma-separated list.
fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(name, format!("expected true or false, got {v:?}"))),
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, ConfigError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| bad(name, format!("expected a whole number, got {v:?}")))
}

#[derive(Default)]
struct Raw {
    brokers: Option<Vec<String>>,
    sasl: Option<Sasl>,
    ssl: Option<bool>,
    ssl_ca_location: Option<PathBuf>,
    client_id: Option<String>,
    server_group: Option<String>,
    request_timeout_ms: Option<i64>,
    fetch_wait_ms: Option<i64>,
    session_timeout_ms: Option<i64>,
    topic_partitions: Option<i64>,
    topic_replication: Option<i64>,
    max_in_flight: Option<i64>,
    max_in_flight_per_partition: Option<i64>,
    max_message_bytes: Option<i64>,
    max_buffered_bytes: Option<i64>,
    send_retries: Option<u32>,
    retry_backoff_ms: Option<i64>,
    auto_offset_reset: Option<OffsetReset>,
    handler_timeout_ms: Option<i64>,
    drain_timeout_ms: Option<i64>,
    stall_warning_ms: Option<i64>,
    retry: Option<RetryPolicy>,
    allowed_reply_topics: Option<Vec<String>>,
    assignment_strategy: Option<String>,
    librdkafka: LibrdkafkaProperties,
    transactional_id: Option<String>,
}

/// Names of the settings, for errors (env variable or builder method).
struct Source {
    brokers: &'static str,
    request_timeout: &'static str,
    fetch_wait: &'static str,
    session_timeout: &'static str,
    partitions: &'static str,
    replication: &'static str,
    max_in_flight: &'static str,
    max_in_flight_per_partition: &'static str,
    max_message_bytes: &'static str,
    max_buffered_bytes: &'static str,
    handler_timeout: &'static str,
    drain_timeout: &'static str,
    stall_warning: &'static str,
    retry: &'static str,
    librdkafka: &'static str,
    sasl: &'static str,
    ssl_ca_location: &'static str,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            brokers: "brokers",
            request_timeout: "request_timeout",
            fetch_wait: "fetch_wait",
            session_timeout: "session_timeout",
            partitions: "topic_partitions",
            replication: "topic_replication",
            max_in_flight: "max_in_flight",
            max_in_flight_per_partition: "max_in_flight_per_partition",
            max_message_bytes: "max_message_bytes",
            max_buffered_bytes: "max_buffered_bytes",
            handler_timeout: "handler_timeout",
            drain_timeout: "drain_timeout",
            stall_warning: "stall_warning",
            retry: "retry",
            librdkafka: "librdkafka",
            sasl: "sasl",
            ssl_ca_location: "ssl_ca_location",
        }
    }
}

/// Builds a validated [`KafkaConfig`]. Durations are given in milliseconds as signed numbers
/// so that a zero or negative value (a classic misconfiguration) is caught here, by name.
pub struct KafkaConfigBuilder {
    raw: Raw,
    source: Source,
}

impl fmt::Debug for KafkaConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfigBuilder").finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.raw.$field = Some(value.into());
            self
        }
    };
}

impl KafkaConfigBuilder {
    /// Bootstrap servers.
    pub fn brokers(mut self, brokers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.raw.brokers = Some(brokers.into_iter().map(Into::into).collect());
        self
    }
    /// SASL credentials.
    pub fn sasl(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: Secret,
    ) -> Self {
        self.raw.sasl = Some(Sasl {
            mechanism,
            username: username.into(),
            password,
        });
        self
    }
    setter!(
        /// TLS to the brokers.
        ssl, ssl, bool
    );
    /// CA bundle for TLS.
    pub fn ssl_ca_location(mut self, path: impl Into<PathBuf>) -> Self {
        self.raw.ssl_ca_location = Some(path.into());
        self
    }
    /// Client id stem.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.raw.client_id = Some(id.into());
        self
    }
    /// Server group stem (`-server` is appended, like NestJS).
    pub fn server_group(mut self, group: impl Into<String>) -> Self {
        self.raw.server_group = Some(group.into());
        self
    }
    setter!(
        /// Default call timeout in ms (must be > 0).
        request_timeout_ms, request_timeout_ms, i64
    );
    setter!(
        /// Fetch wait in ms (must be > 0).
        fetch_wait_ms, fetch_wait_ms, i64
    );
    setter!(
        /// Session timeout in ms (must be > 0).
        session_timeout_ms, session_timeout_ms, i64
    );
    setter!(
        /// Partitions of created topics (must be > 0).
        topic_partitions, topic_partitions, i64
    );
    setter!(
        /// Replication of created topics (must be > 0).
        topic_replication, topic_replication, i64
    );
    setter!(
        /// Messages a server handles at once (must be > 0).
        max_in_flight, max_in_flight, i64
    );
    setter!(
        /// Messages a server handles at once from one partition (must be > 0; capped at
        /// `max_in_flight`).
        max_in_flight_per_partition, max_in_flight_per_partition, i64
    );
    setter!(
        /// Largest payload a server accepts, in bytes (must be > 0).
        max_message_bytes, max_message_bytes, i64
    );
    setter!(
        /// Bytes of consumed records a server holds at most (must be > 0; see
        /// [`KafkaConfig::max_buffered_bytes`]).
        max_buffered_bytes, max_buffered_bytes, i64
    );
    setter!(
        /// Producer retries (bounded).
        send_retries, send_retries, u32
    );
    setter!(
        /// Backoff between producer retries in ms (must be > 0).
        retry_backoff_ms, retry_backoff_ms, i64
    );
    setter!(
        /// Where a new server group starts (default [`OffsetReset::Latest`]).
        auto_offset_reset, auto_offset_reset, OffsetReset
    );
    setter!(
        /// Longest a server handler may run, in ms (must be > 0).
        handler_timeout_ms, handler_timeout_ms, i64
    );
    setter!(
        /// Grace for running handlers on shutdown and revocation, in ms (must be > 0).
        drain_timeout_ms, drain_timeout_ms, i64
    );
    setter!(
        /// Warn about a partition nobody consumes after this many ms (must be > 0).
        stall_warning_ms, stall_warning_ms, i64
    );
    setter!(
        /// What a server does when a handler fails.
        retry, retry, RetryPolicy
    );
    /// Extra topics a server may reply to (besides its contract's reply topics).
    pub fn allowed_reply_topics(
        mut self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.raw.allowed_reply_topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }
    /// librdkafka `partition.assignment.strategy` of server groups.
    pub fn assignment_strategy(mut self, strategy: impl Into<String>) -> Self {
        self.raw.assignment_strategy = Some(strategy.into());
        self
    }
    /// Any other librdkafka property (`debug`, `client.rack`, `socket.keepalive.enable`, ...),
    /// set on every client after the runtime's own. librdkafka validates it in
    /// [`build`](Self::build); properties the runtime owns (`enable.auto.commit`,
    /// `bootstrap.servers`, ...) are refused there, naming the setting to use instead.
    pub fn librdkafka(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.librdkafka.push(key, value);
        self
    }
    /// Exactly-once serving with this transactional id (see
    /// [`KafkaConfig::transactional_id`]).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.raw.transactional_id = Some(id.into());
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<KafkaConfig, ConfigError> {
        let d = KafkaConfig::default();
        let s = &self.source;
        let r = self.raw;
        let positive = |name: &str, v: Option<i64>, default: i64| -> Result<i64, ConfigError> {
            let v = v.unwrap_or(default);
            if v <= 0 {
                Err(bad(name, format!("must be greater than zero, got {v}")))
            } else {
                Ok(v)
            }
        };
        let ms = |name: &str, v: Option<i64>, default: Duration| -> Result<Duration, ConfigError> {
            positive(name, v, default.as_millis() as i64).map(|v| Duration::from_millis(v as u64))
        };
        let brokers = r.brokers.unwrap_or(d.brokers);
        if brokers.is_empty() {
            return Err(bad(s.brokers, "needs at least one host:port"));
        }
        if let Some(b) = brokers
            .iter()
            .find(|b| !b.contains(':') || b.contains(char::is_whitespace))
        {
            return Err(bad(s.brokers, format!("{b:?} is not host:port")));
        }
        if let Some(sasl) = &r.sasl {
            if sasl.username.is_empty() {
                return Err(bad(env::SASL_USERNAME, "is empty"));
            }
        }
        let client_id = r.client_id.unwrap_or(d.client_id);
        if client_id.is_empty() {
            return Err(bad("client_id", "is empty"));
        }
        let max_in_flight =
            positive(s.max_in_flight, r.max_in_flight, d.max_in_flight as i64)? as usize;
        if max_in_flight > MAX_IN_FLIGHT_LIMIT {
            return Err(bad(
                s.max_in_flight,
                format!("must be at most {MAX_IN_FLIGHT_LIMIT}, got {max_in_flight}"),
            ));
        }
        let max_in_flight_per_partition = positive(
            s.max_in_flight_per_partition,
            r.max_in_flight_per_partition,
            d.max_in_flight_per_partition as i64,
        )? as usize;
        let retry = r.retry.unwrap_or_default();
        retry.validate(s.retry)?;
        r.librdkafka.validate(s.librdkafka)?;
        let ssl = r.ssl.unwrap_or(false);
        if r.ssl_ca_location.is_some() && !ssl {
            return Err(bad(
                s.ssl_ca_location,
                "is set but TLS is off: set KAFKA_SSL=true too (a CA alone would be ignored)",
            ));
        }
        if r.sasl
            .as_ref()
            .is_some_and(|sasl| sasl.mechanism == SaslMechanism::Plain)
            && !ssl
        {
            return Err(bad(
                s.sasl,
                "plain sends the password in clear text: it needs TLS (KAFKA_SSL=true), or use scram-sha-512",
            ));
        }
        let allowed_reply_topics = r.allowed_reply_topics.unwrap_or_default();
        if let Some(t) = allowed_reply_topics
            .iter()
            .find(|t| !super::dlq::is_topic_name(t))
        {
            return Err(bad(env::REPLY_TOPICS, format!("{t:?} is not a topic name")));
        }
        let assignment_strategy = r
            .assignment_strategy
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(d.assignment_strategy);
        Ok(KafkaConfig {
            brokers,
            sasl: r.sasl,
            ssl,
            ssl_ca_location: r.ssl_ca_location,
            client_id,
            server_group: r.server_group.filter(|g| !g.is_empty()),
            request_timeout: ms(s.request_timeout, r.request_timeout_ms, d.request_timeout)?,
            fetch_wait: ms(s.fetch_wait, r.fetch_wait_ms, d.fetch_wait)?,
            session_timeout: ms(s.session_timeout, r.session_timeout_ms, d.session_timeout)?,
            topic_partitions: positive(s.partitions, r.topic_partitions, d.topic_partitions.into())?
                as i32,
            topic_replication: positive(
                s.replication,
                r.topic_replication,
                d.topic_replication.into(),
            )? as i32,
            max_in_flight,
            max_in_flight_per_partition: max_in_flight_per_partition.min(max_in_flight),
            max_message_bytes: positive(
                s.max_message_bytes,
                r.max_message_bytes,
                d.max_message_bytes as i64,
            )? as usize,
            max_buffered_bytes: positive(
                s.max_buffered_bytes,
                r.max_buffered_bytes,
                d.max_buffered_bytes as i64,
            )? as usize,
            send_retries: r.send_retries.unwrap_or(d.send_retries).min(100),
            retry_backoff: ms("retry_backoff", r.retry_backoff_ms, d.retry_backoff)?,
            auto_offset_reset: r.auto_offset_reset.unwrap_or_default(),
            handler_timeout: ms(s.handler_timeout, r.handler_timeout_ms, d.handler_timeout)?,
            drain_timeout: ms(s.drain_timeout, r.drain_timeout_ms, d.drain_timeout)?,
            stall_warning: ms(s.stall_warning, r.stall_warning_ms, d.stall_warning)?,
            retry,
            allowed_reply_topics,
            assignment_strategy,
            librdkafka: r.librdkafka,
            transactional_id: r.transactional_id.filter(|id| !id.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<KafkaConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KafkaConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_stack_variables() {
        let c = from(&[]).unwrap();
        assert_eq!(c.brokers, vec!["localhost:9092"]);
        let c = from(&[
            ("KAFKA_BROKERS", "a:1, b:2"),
            ("KAFKA_SASL_USERNAME", "svc"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(c.brokers, vec!["a:1", "b:2"]);
        let sasl = c.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = from(&[
            ("KAFKA_SASL_MECHANISM", "md5"),
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "p"),
        ])
        .unwrap_err();
        assert_eq!(e.name, "KAFKA_SASL_MECHANISM");
        let e = from(&[("KAFKA_REQUEST_TIMEOUT_MS", "-5")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_REQUEST_TIMEOUT_MS");
        let e = from(&[("KAFKA_FETCH_WAIT_MS", "0")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_FETCH_WAIT_MS");
        let e = from(&[("KAFKA_BROKERS", "nohost")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_BROKERS");
        let e = from(&[("KAFKA_SASL_USERNAME", "u")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_SASL_PASSWORD");
        let e = from(&[("KAFKA_MAX_IN_FLIGHT_PER_PARTITION", "0")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_MAX_IN_FLIGHT_PER_PARTITION");
        let e = from(&[("KAFKA_MAX_MESSAGE_BYTES", "-1")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_MAX_MESSAGE_BYTES");
        let c = from(&[
            ("KAFKA_MAX_IN_FLIGHT", "8"),
            ("KAFKA_MAX_IN_FLIGHT_PER_PARTITION", "20"),
        ])
        .unwrap();
        assert_eq!(
            c.max_in_flight_per_partition, 8,
            "capped at the global limit"
        );
        let e = from(&[("KAFKA_SSL", "maybe")]).unwrap_err();
        assert_eq!(e.name, "KAFKA_SSL");
        let e = KafkaConfig::builder()
            .request_timeout_ms(0)
            .build()
            .unwrap_err();
        assert_eq!(e.name, "request_timeout");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn delivery_settings() {
        let c = from(&[]).unwrap();
        assert_eq!(
            c.auto_offset_reset,
            OffsetReset::Latest,
            "like kafkajs/NestJS"
        );
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.assignment_strategy, "cooperative-sticky");
        assert_eq!(c.stall_warning, Duration::from_secs(120));
        let c = from(&[
            ("KAFKA_AUTO_OFFSET_RESET", "Earliest"),
            ("KAFKA_HANDLER_TIMEOUT_MS", "1500"),
            ("KAFKA_DRAIN_TIMEOUT_MS", "2500"),
            ("KAFKA_STALL_WARNING_MS", "30000"),
            ("KAFKA_RETRY_ATTEMPTS", "3"),
            ("KAFKA_RETRY_BACKOFF_MS", "50"),
            ("KAFKA_RETRY_MAX_BACKOFF_MS", "400"),
            ("KAFKA_RETRY_CODES", "unavailable, NOT_FOUND"),
            ("KAFKA_RETRY_REQUESTS", "true"),
            ("KAFKA_REPLY_TOPICS", "gateway.replies, other.reply"),
            ("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "range"),
        ])
        .unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.handler_timeout, Duration::from_millis(1500));
        assert_eq!(c.drain_timeout, Duration::from_millis(2500));
        assert_eq!(c.stall_warning, Duration::from_secs(30));
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.initial_backoff, Duration::from_millis(50));
        assert_eq!(c.retry.max_backoff, Duration::from_millis(400));
        assert_eq!(c.retry.retriable, vec!["UNAVAILABLE", "NOT_FOUND"]);
        assert!(c.retry.retry_requests);
        assert_eq!(
            c.allowed_reply_topics,
            vec!["gateway.replies", "other.reply"]
        );
        assert_eq!(c.assignment_strategy, "range");
        for (var, value) in [
            ("KAFKA_AUTO_OFFSET_RESET", "sometimes"),
            ("KAFKA_HANDLER_TIMEOUT_MS", "0"),
            ("KAFKA_DRAIN_TIMEOUT_MS", "-1"),
            ("KAFKA_STALL_WARNING_MS", "0"),
            ("KAFKA_RETRY_ATTEMPTS", "0"),
            ("KAFKA_RETRY_BACKOFF_MS", "0"),
            ("KAFKA_RETRY_REQUESTS", "perhaps"),
            ("KAFKA_REPLY_TOPICS", "no spaces allowed"),
            ("KAFKA_MAX_IN_FLIGHT", "1000000000000"),
        ] {
            assert_eq!(
                from(&[(var, value)]).unwrap_err().name,
                var,
                "{var}={value}"
            );
        }
        let e = from(&[
            ("KAFKA_RETRY_BACKOFF_MS", "5000"),
            ("KAFKA_RETRY_MAX_BACKOFF_MS", "100"),
        ])
        .unwrap_err();
        assert!(e.name.starts_with("KAFKA_RETRY_"), "{e}");
    }
}
