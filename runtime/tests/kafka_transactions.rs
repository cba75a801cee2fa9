//! Kafka transactions on the test broker (the patched tansu of `vendor/tansu`), through
//! librdkafka's transactional producer: records and consumer offsets committed in one
//! transaction, and an aborted transaction's records hidden from `read_committed` readers.
//! Unpatched tansu 0.6 fails both: it routes no EndTxn (`commit_transaction` fails with
//! "EndTxnRequest (KIP-98) not supported by broker") and its fetches name no aborted
//! transactions (`read_committed` readers get aborted records).

mod support {
    #[allow(dead_code)]
    pub mod broker;
    #[allow(dead_code)]
    pub mod raw;
}

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use support::raw;

fn client(address: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", address);
    c
}

/// Every value in `topic` a reader with `isolation` sees, as text.
fn read(address: &str, topic: &str, isolation: &str) -> Vec<String> {
    raw::read_isolated(address, topic, isolation)
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_records_and_offsets_and_hide_aborted_records() {
    let broker = support::broker::Broker::start();
    let address = broker.address();
    let admin: AdminClient<DefaultClientContext> = client(&address).create().unwrap();
    admin
        .create_topics(
            &[
                NewTopic::new("tx-in", 1, TopicReplication::Fixed(1)),
                NewTopic::new("tx-out", 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let plain: ThreadedProducer<DefaultProducerContext> = client(&address).create().unwrap();
    plain
        .send(BaseRecord::<(), str>::to("tx-in").payload("request"))
        .unwrap();
    plain.flush(Duration::from_secs(10)).unwrap();

    // Consume-process-produce: read the input in a group, write the output and the input's
    // offset in one transaction.
    let consumer: BaseConsumer = client(&address)
        .set("group.id", "tx-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["tx-in"]).unwrap();
    let mut consumed = None;
    for _ in 0..100 {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            consumed = Some(m.offset());
            break;
        }
    }
    let consumed = consumed.expect("the input is consumed");
    let producer: ThreadedProducer<DefaultProducerContext> = client(&address)
        .set("transactional.id", "tx-1")
        .create()
        .unwrap();
    let t = Duration::from_secs(15);
    producer.init_transactions(t).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::<(), str>::to("tx-out").payload("committed"))
        .map_err(|(e, _)| e)
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("tx-in", 0, Offset::Offset(consumed + 1))
        .unwrap();
    producer
        .send_offsets_to_transaction(&offsets, &consumer.group_metadata().unwrap(), t)
        .unwrap();
    producer
        .commit_transaction(t)
        .expect("the broker commits a transaction");

    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::<(), str>::to("tx-out").payload("aborted"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(t).unwrap();
    producer.abort_transaction(t).unwrap();

    assert_eq!(
        read(&address, "tx-out", "read_committed"),
        ["committed"],
        "a read_committed reader sees only the committed record"
    );
    assert_eq!(
        read(&address, "tx-out", "read_uncommitted"),
        ["committed", "aborted"],
        "the aborted record is in the log"
    );
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("tx-in", 0);
    let committed = consumer.committed_offsets(wanted, t).unwrap();
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Offset(consumed + 1),
        "the input's offset was committed by the transaction"
    );
}
