//! Any other librdkafka property, passed through as it is: from the builder
//! ([`super::KafkaConfigBuilder::librdkafka`]) or `KAFKA_LIBRDKAFKA`
//! (`key=value` items separated by `;` or newlines, e.g.
//! `debug=cgrp,fetch;client.rack=eu-west-1a;socket.keepalive.enable=true`).
//!
//! librdkafka itself validates each one when the configuration is built (an unknown name or a
//! bad value fails `build()`/`from_env()` with librdkafka's own explanation). Properties the
//! runtime sets because its guarantees depend on them are refused, naming the setting that owns
//! them. Values of secret-looking properties (`*password*`, `*secret*`, `ssl.key*`, ...) never
//! show in `Debug` output or errors.

use std::fmt;

use super::config::{env, ConfigError};

/// librdkafka properties applied on top of the runtime's own, to every client it creates
/// (producers, consumers, admin clients; librdkafka ignores, with a warning, a consumer-only
/// property on a producer).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LibrdkafkaProperties(Vec<(String, String)>);

impl LibrdkafkaProperties {
    /// Every property, in the order given (a later one with the same name wins).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// Parses `KAFKA_LIBRDKAFKA`.
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut out = LibrdkafkaProperties::default();
        for item in text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let Some((key, value)) = item.split_once('=') else {
                let shown = if is_secret(item) { "<redacted>" } else { item };
                return Err(bad(
                    env::LIBRDKAFKA,
                    format!("expected key=value items separated by ';', got {shown:?}"),
                ));
            };
            out.push(key.trim(), value.trim());
        }
        Ok(out)
    }

    /// Refuses runtime-owned names and asks librdkafka about every property. `source` names
    /// where they came from in errors.
    /// Properties that weaken security are allowed, each with a WARN at start.
    pub(crate) fn validate(&self, source: &str) -> Result<(), ConfigError> {
        for (key, value) in self.iter() {
            if let Some(owner) = owner_of(key) {
                return Err(bad(
                    source,
                    format!("{key} is set by the runtime (its delivery guarantees depend on it); use {owner}"),
                ));
            }
            if key.eq_ignore_ascii_case("isolation.level")
                && !value.eq_ignore_ascii_case("read_committed")
            {
                return Err(bad(
                    source,
                    format!("isolation.level={value} would hand servers and callers records of aborted transactions (exactly-once serving writes in transactions); the runtime reads committed records only"),
                ));
            }
            if let Some(risk) = weakened(key, value) {
                tracing::warn!(source, property = key, value, "{risk}");
            }
            let mut probe = rdkafka::ClientConfig::new();
            probe.set(key, value);
            if let Err(e) = probe.create_native_config() {
                let why = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                let why = redacted(key, value, why);
                return Err(bad(source, format!("librdkafka refuses {key}: {why}")));
            }
        }
        Ok(())
    }

    /// Sets every property on `config` (after the runtime's own).
    pub(crate) fn apply(&self, config: &mut rdkafka::ClientConfig) {
        for (key, value) in self.iter() {
            config.set(key, value);
        }
    }
}

impl fmt::Debug for LibrdkafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.iter() {
            if is_secret(key) {
                map.entry(&key, &"<redacted>");
            } else {
                map.entry(&key, &value);
            }
        }
        map.finish()
    }
}

fn bad(name: &str, problem: String) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        problem,
    }
}

/// The runtime's own properties and the setting that owns each.
const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", env::BROKERS),
    ("metadata.broker.list", env::BROKERS),
    ("security.protocol", "KAFKA_SASL_* / KAFKA_SSL"),
    ("sasl.mechanism", env::SASL_MECHANISM),
    ("sasl.mechanisms", env::SASL_MECHANISM),
    ("sasl.username", env::SASL_USERNAME),
    ("sasl.password", env::SASL_PASSWORD),
    ("ssl.ca.location", env::SSL_CA_LOCATION),
    ("client.id", env::CLIENT_ID),
    ("group.id", env::GROUP_ID),
    (
        "enable.auto.commit",
        "the server's commit tracking (at-least-once)",
    ),
    (
        "enable.auto.offset.store",
        "the server's commit tracking (at-least-once)",
    ),
    ("auto.offset.reset", env::AUTO_OFFSET_RESET),
    (
        "enable.partition.eof",
        "nothing (the runtime reads partition ends itself)",
    ),
    (
        "partition.assignment.strategy",
        env::PARTITION_ASSIGNMENT_STRATEGY,
    ),
    ("session.timeout.ms", env::SESSION_TIMEOUT_MS),
    ("fetch.wait.max.ms", env::FETCH_WAIT_MS),
    (
        "enable.idempotence",
        "nothing (replies and events are always idempotent, acks=all)",
    ),
    (
        "acks",
        "nothing (replies and events are always idempotent, acks=all)",
    ),
    (
        "request.required.acks",
        "nothing (replies and events are always idempotent, acks=all)",
    ),
    ("message.timeout.ms", env::REQUEST_TIMEOUT_MS),
    ("transactional.id", env::TRANSACTIONAL_ID),
];

/// What a property given as `value` gives up, if it weakens security.
fn weakened(key: &str, value: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    let value = value.trim().to_ascii_lowercase();
    match (key.as_str(), value.as_str()) {
        ("enable.ssl.certificate.verification", "false" | "0" | "no" | "off") => Some(
            "TLS certificates of the brokers are NOT verified: anyone on the network path can impersonate them and read or change every record and credential",
        ),
        ("ssl.endpoint.identification.algorithm", "none" | "") => Some(
            "the brokers' TLS certificates are not checked against their host names: any certificate the CA signed is accepted for any broker",
        ),
        _ => None,
    }
}

fn owner_of(key: &str) -> Option<&'static str> {
    OWNED
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, owner)| *owner)
}

/// `text` without the value of a secret property.
fn redacted(key: &str, value: &str, text: String) -> String {
    if is_secret(key) && !value.is_empty() {
        text.replace(value, "<redacted>")
    } else {
        text
    }
}

/// Property names whose values are credentials or key material.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k.starts_with("ssl.key")
        || k.starts_with("ssl_key")
        || k.starts_with("sasl.oauthbearer.config")
        || k.starts_with("ssl.keystore")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items_and_librdkafka_validates_them() {
        let p = LibrdkafkaProperties::parse(
            " debug = cgrp,fetch ;client.rack=eu-1\n socket.keepalive.enable=true;; ",
        )
        .unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [
                ("debug", "cgrp,fetch"),
                ("client.rack", "eu-1"),
                ("socket.keepalive.enable", "true")
            ]
        );
        p.validate(env::LIBRDKAFKA).unwrap();

        let e = LibrdkafkaProperties::parse("no-equals-sign").unwrap_err();
        assert_eq!(e.name, env::LIBRDKAFKA);

        let unknown = LibrdkafkaProperties::parse("socket.keepalive.enabled=true").unwrap();
        let e = unknown.validate(env::LIBRDKAFKA).unwrap_err();
        assert!(e.problem.contains("socket.keepalive.enabled"), "{e}");
        assert!(e.problem.contains("No such configuration property"), "{e}");

        let bad_value = LibrdkafkaProperties::parse("socket.keepalive.enable=maybe").unwrap();
        let e = bad_value.validate("librdkafka").unwrap_err();
        assert_eq!(e.name, "librdkafka");
        assert!(e.problem.contains("Expected bool value"), "{e}");
    }

    #[test]
    fn runtime_owned_properties_are_refused_naming_their_setting() {
        let p = LibrdkafkaProperties::parse("enable.auto.commit=true").unwrap();
        let e = p.validate(env::LIBRDKAFKA).unwrap_err();
        assert!(
            e.problem
                .contains("enable.auto.commit is set by the runtime"),
            "{e}"
        );
        let p = LibrdkafkaProperties::parse("Bootstrap.Servers=elsewhere:9092").unwrap();
        let e = p.validate(env::LIBRDKAFKA).unwrap_err();
        assert!(e.problem.contains(env::BROKERS), "{e}");
    }

    #[test]
    fn uncommitted_reads_are_refused_and_unverified_tls_is_allowed_with_a_warning() {
        for value in ["read_uncommitted", "READ_UNCOMMITTED", "garbage"] {
            let p = LibrdkafkaProperties::parse(&format!("Isolation.Level={value}")).unwrap();
            let e = p.validate(env::LIBRDKAFKA).unwrap_err();
            assert!(e.problem.contains("aborted transactions"), "{e}");
        }
        let p = LibrdkafkaProperties::parse("isolation.level=read_committed").unwrap();
        p.validate(env::LIBRDKAFKA).unwrap();

        let p = LibrdkafkaProperties::parse("enable.ssl.certificate.verification=false").unwrap();
        let logged = Logged::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logged.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || p.validate(env::LIBRDKAFKA).unwrap());
        let text = logged.text();
        assert!(
            text.contains("WARN") && text.contains("NOT verified"),
            "{text}"
        );
        assert!(weakened("enable.ssl.certificate.verification", "false")
            .is_some_and(|w| w.contains("NOT verified")));
        assert!(weakened("Enable.SSL.Certificate.Verification", " Off ").is_some());
        assert!(weakened("enable.ssl.certificate.verification", "true").is_none());
        assert!(weakened("ssl.endpoint.identification.algorithm", "none").is_some());
        assert!(weakened("ssl.endpoint.identification.algorithm", "https").is_none());
    }

    /// What a test subscriber wrote.
    #[derive(Clone, Default)]
    struct Logged(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Logged {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Logged {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logged {
        type Writer = Logged;
        fn make_writer(&'a self) -> Logged {
            self.clone()
        }
    }

    #[test]
    fn secret_values_never_show() {
        let p = LibrdkafkaProperties::parse(
            "ssl.key.password=hunter2-secret;sasl.oauthbearer.client.secret=s3cr3t;debug=all",
        )
        .unwrap();
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains(r#""debug": "all""#), "{shown}");
        // A malformed item that looks like a secret is not echoed either.
        let e = LibrdkafkaProperties::parse("ssl.key.password hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // librdkafka's own message, should it quote a secret value, is redacted too.
        let why = redacted(
            "ssl.key.password",
            "hunter2",
            r#"Invalid value "hunter2" for configuration property "ssl.key.password""#.into(),
        );
        assert_eq!(
            why,
            r#"Invalid value "<redacted>" for configuration property "ssl.key.password""#
        );
        assert!(redacted("debug", "all", "all".into()) == "all");
    }
}
