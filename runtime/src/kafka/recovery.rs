//! Recovering consumers after broker trouble.
//!
//! A broker that comes back without its state (a restarted node with in-memory storage, a
//! cluster rebuilt under the same address), or a topic deleted and re-created, starts its
//! partitions at offset 0 again. A consumer still positioned at the old offsets (its own
//! position, or a committed offset librdkafka re-sent to the new broker) waits for offsets
//! that may never come: every new record below the old position is skipped. After consumer
//! errors, both sides check their partitions, and one that ends before their position is
//! read again from where `auto.offset.reset` says: a server follows `KAFKA_AUTO_OFFSET_RESET`
//! (`latest` by default: the end, since what is below it may be the history it handled
//! already, as after an unclean leader election truncated the log), logging the gap at ERROR
//! with both offsets; a client's reply reader reads from the start (replies that are not ours
//! are dropped by correlation id).

use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

/// How long after a consumer error the checks go on.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// Bound of each broker round trip of a check.
const CALL: Duration = Duration::from_secs(2);

/// Seeks every assigned partition whose end offset is below the consumer's position (or its
/// committed offset) to `reset` (`Offset::Beginning` or `Offset::End`). Blocking: run it off
/// the async workers. Returns the partitions it moved.
pub(crate) fn rewind_past_end<C, T>(
    consumer: &T,
    check_committed: bool,
    reset: Offset,
) -> TopicPartitionList
where
    C: ConsumerContext,
    T: Consumer<C>,
{
    let mut rewound = TopicPartitionList::new();
    let Ok(assigned) = consumer.assignment() else {
        return rewound;
    };
    if assigned.count() == 0 {
        return rewound;
    }
    let positions = consumer.position().ok();
    let committed = if check_committed {
        match consumer.committed_offsets(assigned.clone(), CALL) {
            Ok(c) => Some(c),
            Err(_) => return rewound, // the broker is not back yet: next time
        }
    } else {
        None
    };
    let offset_in = |list: &Option<TopicPartitionList>, topic: &str, partition: i32| {
        list.as_ref()
            .and_then(|l| l.find_partition(topic, partition))
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
    };
    for e in assigned.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let position = offset_in(&positions, topic, partition);
        let committed = offset_in(&committed, topic, partition);
        if position.is_none() && committed.is_none() {
            continue; // nothing to compare: librdkafka resolves the start itself
        }
        let Ok((_, end)) = consumer.fetch_watermarks(topic, partition, CALL) else {
            break; // the broker is not back yet (or the topic is not): next time
        };
        if let Some(ahead) = past_end(position, committed, end) {
            let from = match reset {
                Offset::End => "its end (auto.offset.reset=latest)",
                _ => "its start (auto.offset.reset=earliest)",
            };
            tracing::error!(
                topic,
                partition,
                position = ahead,
                end,
                "partition ends before our position (truncated, re-created, or a broker that lost its state): offsets {end}..{ahead} are gone; reading it from {from}"
            );
            match consumer.seek(topic, partition, reset, CALL) {
                Ok(()) => {
                    let _ = rewound.add_partition(topic, partition);
                }
                Err(err) => tracing::warn!(topic, partition, error = %err, "cannot rewind"),
            }
        }
    }
    rewound
}

/// Where a consumer stands in a partition that ends at `end`, when that is past the end: the
/// furthest of its position and its committed offset. An offset equal to `end` is the next
/// record to come, not past it.
fn past_end(position: Option<i64>, committed: Option<i64>, end: i64) -> Option<i64> {
    let ahead = position.into_iter().chain(committed).max()?;
    (ahead > end).then_some(ahead)
}

#[cfg(test)]
mod tests {
    use super::past_end;

    #[test]
    fn a_partition_is_rewound_only_when_it_ends_before_where_we_stand() {
        assert_eq!(
            past_end(Some(10), None, 10),
            None,
            "at the end: the next record"
        );
        assert_eq!(past_end(Some(9), Some(8), 10), None);
        assert_eq!(past_end(Some(11), None, 10), Some(11));
        assert_eq!(
            past_end(Some(0), Some(500), 3),
            Some(500),
            "a committed offset the new broker never had"
        );
        assert_eq!(past_end(None, Some(4), 0), Some(4), "a re-created topic");
        assert_eq!(past_end(None, None, 0), None);
    }
}
