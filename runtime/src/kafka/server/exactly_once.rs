//! Exactly-once serving ([`KafkaConfig::transactional_id`](super::super::KafkaConfig)): each
//! message is handled in a Kafka transaction holding its replies, its dead-letter copy, the
//! events its handler emits through the runtime, and its offset. A `read_committed` reader
//! (librdkafka's default, so every `KafkaClient`) sees all of them or none: a crash before the
//! commit leaves nothing visible, and the redelivered message is handled again in a new
//! transaction. The server handles one message at a time in this mode.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::super::transaction;
use super::process::{process, Outcome};
use super::record::Record;
use super::Shared;

/// First and longest wait before handling a message again after its transaction failed.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

/// Handles `msg` in a transaction, again (in a new one) until one commits, for as long as the
/// partition is ours (a revocation cancels this, and the open transaction is aborted).
pub(super) async fn process_exactly_once(shared: &Arc<Shared>, msg: &Record) -> Outcome {
    let mut wait = BACKOFF.0;
    for attempt in 1u32.. {
        match once(shared, msg).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(
                    pattern = &*msg.pattern,
                    partition = msg.partition,
                    offset = msg.offset,
                    attempt,
                    error = %e,
                    "transaction failed and was aborted; the message is handled again"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF.1);
            }
        }
    }
    unreachable!("attempts are counted without end")
}

async fn once(shared: &Arc<Shared>, msg: &Record) -> Result<(), KafkaError> {
    let producer = shared.producer.get();
    let timeout = shared.settings.reply_timeout;
    let p = producer.clone();
    blocking(move || p.begin_transaction()).await?;
    let mut open = Open {
        producer: Some(producer.clone()),
    };
    // A refused dead-letter copy fails the transaction: it is aborted and the record
    // handled again.
    transaction::scope(producer.clone(), process(shared, msg))
        .await
        .map_err(|_| KafkaError::Canceled)?;
    let metadata = shared.group_metadata().ok_or(KafkaError::Canceled)?;
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&msg.pattern, msg.partition, Offset::Offset(msg.offset + 1))?;
    let p = producer.clone();
    blocking(move || p.send_offsets_to_transaction(&offsets, &metadata, timeout)).await?;
    let p = producer.clone();
    blocking(move || p.commit_transaction(timeout)).await?;
    open.producer = None;
    Ok(())
}

/// An open transaction: aborted when dropped (a failure, or the job cancelled) unless it was
/// committed.
struct Open {
    producer: Option<FutureProducer>,
}

impl Drop for Open {
    fn drop(&mut self) {
        let Some(producer) = self.producer.take() else {
            return;
        };
        // Blocking, and maybe after the runtime is gone: on a thread of its own.
        std::thread::spawn(move || {
            if let Err(e) = producer.abort_transaction(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "cannot abort the transaction");
            }
        });
    }
}

/// The consumer group metadata transactions commit offsets with (its generation changes with
/// every rebalance).
pub(super) type GroupMetadata = std::sync::Mutex<Option<Arc<ConsumerGroupMetadata>>>;
