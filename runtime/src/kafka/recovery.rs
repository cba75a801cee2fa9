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

use super::OffsetReset;

/// How long after a consumer error the checks go on.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// Bound of each broker round trip of a check.
const CALL: Duration = Duration::from_secs(2);

/// Seeks every assigned partition whose end offset is below the consumer's position (or its
/// committed offset) to where `reset` says: its end (`Latest`) or its start (`Earliest`).
/// Blocking: run it off the async workers. Returns the partitions it moved.
pub(crate) fn rewind_past_end<C, T>(
    consumer: &T,
    check_committed: bool,
    reset: OffsetReset,
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
        let Ok((low, end)) = consumer.fetch_watermarks(topic, partition, CALL) else {
            break; // the broker is not back yet (or the topic is not): next time
        };
        if let Some((ahead, target)) = resume_at(position, committed, (low, end), reset) {
            let from = match reset {
                OffsetReset::Latest => "its end (auto.offset.reset=latest)",
                OffsetReset::Earliest => "its start (auto.offset.reset=earliest)",
            };
            tracing::error!(
                topic,
                partition,
                position = ahead,
                end,
                "partition ends before our position (truncated, re-created, or a broker that lost its state): offsets {end}..{ahead} are gone; reading it from {from}"
            );
            match consumer.seek(topic, partition, Offset::Offset(target), CALL) {
                Ok(()) => {
                    let _ = rewound.add_partition(topic, partition);
                }
                Err(err) => tracing::warn!(topic, partition, error = %err, "cannot rewind"),
            }
        }
    }
    rewound
}

/// Where a consumer stands in a partition holding offsets `low..end`, and where it reads next,
/// when it stands past the end (`None` when it does not): it stands at the furthest of its
/// position and its committed offset (one equal to `end` is the next record to come, not past
/// it), and reads from `end` with `Latest` — what is below may be history handled already —
/// or from `low` with `Earliest`.
fn resume_at(
    position: Option<i64>,
    committed: Option<i64>,
    (low, end): (i64, i64),
    reset: OffsetReset,
) -> Option<(i64, i64)> {
    let ahead = position.into_iter().chain(committed).max()?;
    let target = match reset {
        OffsetReset::Latest => end,
        OffsetReset::Earliest => low,
    };
    (ahead > end).then_some((ahead, target))
}

#[cfg(test)]
mod tests {
    use super::{resume_at, OffsetReset};

    #[test]
    fn a_partition_is_moved_only_when_it_ends_before_where_we_stand() {
        let at = |position, committed, end| {
            resume_at(position, committed, (0, end), OffsetReset::Earliest)
        };
        assert_eq!(at(Some(10), None, 10), None, "at the end: the next record");
        assert_eq!(at(Some(9), Some(8), 10), None);
        assert_eq!(at(Some(11), None, 10), Some((11, 0)));
        assert_eq!(
            at(Some(0), Some(500), 3),
            Some((500, 0)),
            "a committed offset the new broker never had"
        );
        assert_eq!(at(None, Some(4), 0), Some((4, 0)), "a re-created topic");
        assert_eq!(at(None, None, 0), None);
    }

    #[test]
    fn it_reads_on_from_where_the_reset_policy_says() {
        // A log truncated to 40..120 under a group at 500.
        assert_eq!(
            resume_at(Some(500), Some(500), (40, 120), OffsetReset::Latest),
            Some((500, 120)),
            "latest: the end, not the whole retention again"
        );
        assert_eq!(
            resume_at(Some(500), Some(500), (40, 120), OffsetReset::Earliest),
            Some((500, 40)),
            "earliest: the start of what is there"
        );
    }
}
