//! The Kafka transaction a server handles a message in (exactly-once serving,
//! [`KafkaConfig::transactional_id`](super::KafkaConfig::transactional_id)): set around the
//! handler's task, so that the events it emits through a [`KafkaClient`](super::KafkaClient)
//! join the transaction of its replies and offset. Requests it sends do not: their replies
//! could not be read before the transaction commits.

use std::future::Future;

use rdkafka::producer::FutureProducer;

tokio::task_local! {
    static CURRENT: FutureProducer;
}

/// The transactional producer of the message being handled on this task, if any.
pub(crate) fn current() -> Option<FutureProducer> {
    CURRENT.try_with(FutureProducer::clone).ok()
}

/// Runs `fut` inside the transaction of `producer`.
pub(crate) fn scope<F: Future>(
    producer: FutureProducer,
    fut: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(producer, fut)
}
