//! A first contact with the brokers, before a client, server or admin call starts: a refused
//! login or TLS handshake is a clear error at once, not every later call timing out.
//!
//! librdkafka retries a failed login or handshake forever and reports it only as an error
//! event on a client's main queue; requests meanwhile wait for a broker that never becomes
//! usable. The probe is a producer handle that polls that queue while asking for metadata, so
//! it sees the event the moment it happens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use super::KafkaConfig;
use crate::RpcError;

/// How long one metadata round trip may wait before the error events are looked at again.
const SLICE: Duration = Duration::from_millis(200);
/// How long each look at the error events takes.
const EVENTS: Duration = Duration::from_millis(10);

/// What the probe found.
#[derive(Debug)]
pub(crate) enum Contact {
    /// A broker answered: the login and the handshake (if any) were accepted.
    Answered,
    /// No broker answered within the time given (down, unreachable, or still starting).
    Silent,
}

/// Records the first login or TLS failure librdkafka reports.
#[derive(Default)]
struct Watch {
    refused: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        let Some(code) = error.rdkafka_error_code() else {
            return;
        };
        if matches!(
            code,
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL
        ) {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.get_or_insert_with(|| (code, reason.to_owned()));
        }
    }
}

// The probe produces nothing; a producer handle is the lightest client that polls its queue.
impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Contacts the brokers of `config` for at most `within`, on a blocking thread: `Err` when
/// they refused the SASL login (`UNAUTHENTICATED`) or the TLS handshake (`UNAVAILABLE`, naming
/// the certificate problem).
pub(crate) async fn contact(config: &KafkaConfig, within: Duration) -> Result<Contact, RpcError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || contact_blocking(&config, within))
        .await
        .map_err(|e| RpcError::internal(format!("connection check failed: {e}")))?
}

fn contact_blocking(config: &KafkaConfig, within: Duration) -> Result<Contact, RpcError> {
    let mut c = config.common();
    config.librdkafka.apply(&mut c);
    let producer: BaseProducer<Watch> = c
        .create_with_context(Watch::default())
        .map_err(|e| super::unavailable("cannot create a Kafka client", e))?;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let answered = producer
            .client()
            .fetch_metadata(None, left.min(SLICE))
            .is_ok();
        // Serves the queued events (each call waits its whole timeout, so keep it short).
        producer.poll(EVENTS);
        let refused = producer
            .context()
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((code, reason)) = refused {
            return Err(refusal(config, code, &reason));
        }
        if answered {
            return Ok(Contact::Answered);
        }
        if Instant::now() >= deadline {
            return Ok(Contact::Silent);
        }
    }
}

/// [`contact`] within the request timeout, where silence is an error too (`UNAVAILABLE`).
pub(crate) async fn require(config: &KafkaConfig) -> Result<(), RpcError> {
    let within = config.request_timeout;
    match contact(config, within).await? {
        Contact::Answered => Ok(()),
        Contact::Silent => Err(RpcError::unavailable(format!(
            "brokers {} unreachable: no answer within {} ms",
            config.brokers.join(","),
            within.as_millis()
        ))),
    }
}

/// The error for a refused login or handshake. librdkafka's reason never holds the password;
/// it is taken out anyway should a broker ever echo it.
fn refusal(config: &KafkaConfig, code: RDKafkaErrorCode, reason: &str) -> RpcError {
    let reason = match &config.sasl {
        Some(sasl) if !sasl.password.expose().is_empty() => {
            reason.replace(sasl.password.expose(), "<redacted>")
        }
        _ => reason.to_owned(),
    };
    let brokers = config.brokers.join(",");
    match (code, &config.sasl) {
        (RDKafkaErrorCode::Authentication, Some(sasl)) => RpcError::unauthenticated(format!(
            "brokers {brokers} refused the SASL login of user {:?} ({}): {reason}",
            sasl.username,
            sasl.mechanism.librdkafka_name()
        )),
        (RDKafkaErrorCode::Authentication, None) => RpcError::unauthenticated(format!(
            "brokers {brokers} require a login (set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD): {reason}"
        )),
        _ => RpcError::unavailable(format!(
            "TLS with brokers {brokers} failed (is KAFKA_SSL_CA_LOCATION the CA that signed their certificate?): {reason}"
        )),
    }
}
