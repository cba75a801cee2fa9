//! A producer that is replaced when it stops getting records through.
//!
//! librdkafka's idempotent producer keeps a producer id across reconnects. A broker that
//! comes back without its state (a restarted single node with in-memory storage, a cluster
//! rebuilt under the same address) rejects that id forever (`UNKNOWN_PRODUCER_ID`), and every
//! record times out although the broker is up. When a send times out or the producer reports
//! a fatal error, the next sender builds a fresh producer (a new producer id); at most one
//! rebuild per [`MIN_AGE`], so a broker that is simply down does not cause a rebuild storm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;

/// The youngest producer that may be replaced.
pub(crate) const MIN_AGE: Duration = Duration::from_secs(2);

pub(crate) struct Renewable {
    config: ClientConfig,
    current: Mutex<(FutureProducer, Instant)>,
    /// A transactional producer is never replaced: a fresh one would need its transactions
    /// initialised, and it would fence the one in use.
    renews: bool,
}

impl Renewable {
    pub(crate) fn new(config: ClientConfig) -> Result<Self, KafkaError> {
        let renews = config.get("transactional.id").is_none();
        let producer = config.create()?;
        Ok(Renewable {
            config,
            current: Mutex::new((producer, Instant::now())),
            renews,
        })
    }

    /// The producer to send with now (cheap: a reference-counted handle).
    pub(crate) fn get(&self) -> FutureProducer {
        self.current.lock().expect("producer").0.clone()
    }

    /// Sends `record` and waits for the broker's ack. The outcome is watched by a task of
    /// its own, so a failure still renews the producer when the caller stopped waiting (a
    /// call timeout drops this future).
    pub(crate) async fn send<K, P>(
        self: &Arc<Self>,
        record: FutureRecord<'_, K, P>,
    ) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let producer = self.get();
        let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
        let this = self.clone();
        let watcher = tokio::spawn(async move { this.settle(&producer, delivery).await });
        watcher.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Like [`Renewable::send`], awaited in place (no task per send): for callers that always
    /// wait for the delivery report (a server's replies and dead letters; a cancelled job may
    /// skip the check, and the next failed send through the same producer makes it).
    pub(crate) async fn send_awaited<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
    ) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let producer = self.get();
        let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
        self.settle(&producer, delivery).await
    }

    /// Waits for the delivery report of a send through `producer`; a failure may renew it.
    async fn settle(
        &self,
        producer: &FutureProducer,
        delivery: DeliveryFuture,
    ) -> Result<(), KafkaError> {
        let result = match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        };
        if let Err(e) = &result {
            self.failed(producer, e);
        }
        result
    }

    /// Called with the error of a failed send through `used`: replaces the producer if the
    /// failure says it may be stuck.
    fn failed(&self, used: &FutureProducer, error: &KafkaError) {
        let stuck = matches!(
            error,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        ) || used.client().fatal_error().is_some();
        if !stuck || !self.renews {
            return;
        }
        let mut current = self.current.lock().expect("producer");
        let same = current.0.client().native_ptr() == used.client().native_ptr();
        if !same || current.1.elapsed() < MIN_AGE {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(
                    client_id = self.config.get("client.id").unwrap_or("-"),
                    error = %error,
                    "producer replaced after a failed send"
                );
                let old = std::mem::replace(&mut *current, (fresh, Instant::now())).0;
                // Dropping a producer flushes it: not on an async worker.
                std::thread::spawn(move || drop(old));
            }
            Err(e) => tracing::warn!(error = %e, "cannot build a fresh producer"),
        }
    }
}
