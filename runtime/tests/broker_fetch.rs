//! The test broker's fetch, checked on its own: a consumer positioned inside a batch of several
//! records gets the rest of that batch, each record once. Kafka returns the batch that holds
//! the fetch offset and the client skips what lies before it; tansu 0.6 returned only the
//! batches from the offset on and then fetched the next batch twice — the records after a
//! committed offset inside a batch were lost, the next one delivered twice, wherever a server
//! took a partition over (rebalance, restart). And a consumer at the tip of a partition that
//! several producers write to concurrently gets every record: tansu moved the high watermark
//! before writing a batch, and a fetch in between handed out the batches after the missing
//! one, so the client skipped it for good. Both fixed in `vendor/tansu` (`AXION-PATCH.md`).

mod support {
    #[allow(dead_code)]
    pub mod broker;
}

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use support::broker::Broker;

const TOPIC: &str = "batched";
const RECORDS: i64 = 5;
/// Concurrent producers, and records each, for the tip-of-the-partition check.
const PRODUCERS: usize = 4;
const EACH: usize = 500;
/// Rounds of it, each on a topic of its own.
const ROUNDS: usize = 5;

/// Offsets and payloads read from `from` until `want` records came, then for a moment more
/// (a record delivered twice must show).
fn read_from(address: &str, from: i64, want: usize) -> Vec<(i64, String)> {
    read_topic(address, TOPIC, from, want)
}

/// [`read_from`] of any topic's partition 0.
fn read_topic(address: &str, topic: &str, from: i64, want: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", "fetch-check")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let mut settle_until: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Bounded: 20 s at most, 1 s once everything expected came.
    while Instant::now() < deadline && settle_until.is_none_or(|t| Instant::now() < t) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            got.push((m.offset(), text));
        }
        if got.len() >= want && settle_until.is_none() {
            settle_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    got
}

/// Creates `topic` with one partition.
async fn create(address: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

#[tokio::test]
async fn a_consumer_inside_a_batch_gets_the_rest_of_it_once() {
    let broker = Broker::start();
    let address = broker.address();
    create(&address, TOPIC).await;

    // One batch: the records are queued together and the producer lingers long enough to send
    // them in one request.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("linger.ms", "500")
        .create()
        .unwrap();
    let deliveries: Vec<_> = (0..RECORDS)
        .map(|n| {
            let payload = format!("record {n}");
            producer
                .send_result(
                    FutureRecord::<(), _>::to(TOPIC)
                        .partition(0)
                        .payload(&payload),
                )
                .unwrap()
        })
        .collect();
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().unwrap().offset);
    }
    assert_eq!(offsets, (0..RECORDS).collect::<Vec<_>>());

    // From the start: every record once (the batch is whole).
    let all = read_from(&address, 0, RECORDS as usize);
    assert_eq!(
        all.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..RECORDS).collect::<Vec<_>>()
    );
    // From inside the batch: the rest of it, once each, with the right payloads.
    let rest = read_from(&address, 2, (RECORDS - 2) as usize);
    let expected: Vec<(i64, String)> = (2..RECORDS).map(|n| (n, format!("record {n}"))).collect();
    assert_eq!(rest, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_at_the_tip_gets_every_record_of_concurrent_producers() {
    // The race is narrow: on the unpatched broker about one round in three lost records.
    let broker = Broker::start();
    for round in 0..ROUNDS {
        tip_round(&broker.address(), &format!("tip-{round}")).await;
    }
}

/// One round of the tip check on its own topic.
async fn tip_round(address: &str, topic: &str) {
    create(address, topic).await;
    let total = PRODUCERS * EACH;
    // The reader follows the tip while the producers write (its own thread: it blocks).
    let reader = {
        let (address, topic) = (address.to_owned(), topic.to_owned());
        std::thread::spawn(move || read_topic(&address, &topic, 0, total))
    };
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (address, topic) = (address.to_owned(), topic.to_owned());
        producers.push(tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &address)
                .set("linger.ms", "0")
                .create()
                .unwrap();
            // Bounded: EACH sends, awaited in windows of 16.
            for window in (0..EACH).collect::<Vec<_>>().chunks(16) {
                let sends: Vec<_> = window
                    .iter()
                    .map(|n| {
                        let payload = format!("p{p}-{n}");
                        producer
                            .send_result(
                                FutureRecord::<(), _>::to(&topic)
                                    .partition(0)
                                    .payload(&payload),
                            )
                            .unwrap()
                    })
                    .collect();
                for s in sends {
                    s.await.unwrap().unwrap();
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let got = reader.join().unwrap();
    let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
    let missing: Vec<i64> = (0..total as i64).filter(|o| !offsets.contains(o)).collect();
    assert!(
        missing.is_empty(),
        "{topic}: offsets never delivered: {missing:?}"
    );
    assert_eq!(
        offsets,
        (0..total as i64).collect::<Vec<_>>(),
        "each once, in order"
    );
}
