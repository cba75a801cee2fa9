//! Notices partitions of a server's topics that nobody consumes.
//!
//! Every member of a server group looks now and then at each partition of its request topics:
//! how far the group's committed offset is behind the log end, and whether it moved. Messages
//! that wait while the committed offset stays put for `stall_warning` mean that nobody
//! consumes the partition: no member owns it (a broker that lost track of an assignment), or
//! its owner is stuck or never commits. The server warns once per stall, and
//! [`ServerHandle::stalled_partitions`](super::ServerHandle::stalled_partitions) lists them.
//! A check costs an OffsetFetch and a ListOffsets per partition, on a thread and a client of
//! its own: the consume loop never waits for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::super::KafkaConfig;

/// A topic and one of its partitions.
pub(super) type Partition = (String, i32);

/// Bound of each broker call of a check.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one check saw of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
    /// The first offset still in the log.
    pub start: i64,
    /// The log end (high watermark).
    pub end: i64,
}

impl Seen {
    /// Messages after the committed offset (after the log start when there is none).
    fn waiting(&self) -> i64 {
        let from = self.committed.unwrap_or(self.start).max(self.start);
        (self.end - from).max(0)
    }
}

/// A change a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Messages have waited `for_` while the committed offset stayed put.
    Stalled { waiting: i64, for_: Duration },
    /// A stalled partition moves again (or has nothing waiting any more).
    Resumed,
}

struct Track {
    committed: Option<i64>,
    since: Instant,
    stalled: bool,
}

/// The pure core: which partitions are stalled, from successive observations.
pub(super) struct Stalls {
    after: Duration,
    tracks: BTreeMap<Partition, Track>,
}

impl Stalls {
    pub(super) fn new(after: Duration) -> Self {
        Stalls {
            after,
            tracks: BTreeMap::new(),
        }
    }

    /// Records what a check saw at `now`; returns what changed.
    pub(super) fn observe(
        &mut self,
        now: Instant,
        seen: impl IntoIterator<Item = (Partition, Seen)>,
    ) -> Vec<(Partition, Change)> {
        let mut changes = Vec::new();
        for (partition, seen) in seen {
            let track = self.tracks.entry(partition.clone()).or_insert(Track {
                committed: seen.committed,
                since: now,
                stalled: false,
            });
            let waiting = seen.waiting();
            if waiting == 0 || track.committed != seen.committed {
                track.committed = seen.committed;
                track.since = now;
                if std::mem::take(&mut track.stalled) {
                    changes.push((partition, Change::Resumed));
                }
            } else if !track.stalled && now.duration_since(track.since) >= self.after {
                track.stalled = true;
                let for_ = now.duration_since(track.since);
                changes.push((partition, Change::Stalled { waiting, for_ }));
            }
        }
        changes
    }

    /// The partitions stalled now.
    pub(super) fn stalled(&self) -> Vec<Partition> {
        let stalled = self.tracks.iter().filter(|(_, t)| t.stalled);
        stalled.map(|(p, _)| p.clone()).collect()
    }
}

/// Starts the watchdog thread of a server; it ends when `stop` is set.
pub(super) fn spawn(
    config: &KafkaConfig,
    group: &str,
    topics: Vec<String>,
    stalled: Arc<Mutex<Vec<Partition>>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut c = config.common();
    c.set("group.id", group)
        .set("client.id", format!("{group}-watchdog"))
        .set("enable.auto.commit", "false");
    config.librdkafka.apply(&mut c);
    let consumer: BaseConsumer = match c.create() {
        Ok(consumer) => consumer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the watchdog's client; stalled partitions go unnoticed");
            return Ok(());
        }
    };
    let after = config.stall_warning;
    let group = group.to_owned();
    let every = (after / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
    std::thread::Builder::new()
        .name(format!("axion-watchdog {group}"))
        .spawn(move || {
            let mut stalls = Stalls::new(after);
            while !stop.load(Ordering::SeqCst) {
                let seen = look(&consumer, &topics);
                for ((topic, partition), s) in &seen {
                    crate::metrics::global().lag(topic, *partition, &group, s.waiting());
                }
                for ((topic, partition), change) in stalls.observe(Instant::now(), seen) {
                    report(&topic, partition, &change);
                }
                *stalled.lock().unwrap_or_else(|e| e.into_inner()) = stalls.stalled();
                let next = Instant::now() + every;
                while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
        .map(drop)
}

fn report(topic: &str, partition: i32, change: &Change) {
    match change {
        Change::Stalled { waiting, for_ } => tracing::warn!(
            topic,
            partition,
            waiting,
            stalled_for_ms = for_.as_millis() as u64,
            "messages wait on a partition nobody consumes: no member of the group owns it, \
             or its owner is stuck or does not commit"
        ),
        Change::Resumed => tracing::info!(topic, partition, "a stalled partition moves again"),
    }
}

/// One check of every partition of `topics`; a partition whose numbers cannot be read now
/// is left out (the next check tries again).
fn look(consumer: &BaseConsumer, topics: &[String]) -> Vec<(Partition, Seen)> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT) else {
            continue;
        };
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    if tpl.count() == 0 {
        return Vec::new();
    }
    let Ok(committed) = consumer.committed_offsets(tpl, CALL_TIMEOUT) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    for e in committed.elements() {
        if e.error().is_err() {
            continue;
        }
        let Ok((start, end)) = consumer.fetch_watermarks(e.topic(), e.partition(), CALL_TIMEOUT)
        else {
            continue;
        };
        let committed = match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        };
        let partition = (e.topic().to_owned(), e.partition());
        seen.push((
            partition,
            Seen {
                committed,
                start,
                end,
            },
        ));
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(10);

    fn p(n: i32) -> Partition {
        ("t".to_owned(), n)
    }

    fn seen(committed: Option<i64>, end: i64) -> Seen {
        Seen {
            committed,
            start: 0,
            end,
        }
    }

    #[test]
    fn messages_waiting_behind_a_committed_offset_that_stays_put_stall() {
        let t0 = Instant::now();
        let mut s = Stalls::new(AFTER);
        assert!(s.observe(t0, [(p(0), seen(Some(5), 9))]).is_empty());
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(s.observe(at(9), [(p(0), seen(Some(5), 12))]).is_empty());
        let changes = s.observe(at(10), [(p(0), seen(Some(5), 12))]);
        let stalled = Change::Stalled {
            waiting: 7,
            for_: AFTER,
        };
        assert_eq!(changes, vec![(p(0), stalled)]);
        assert_eq!(s.stalled(), vec![p(0)]);
        // Reported once per stall.
        assert!(s.observe(at(20), [(p(0), seen(Some(5), 12))]).is_empty());
        // The offset moves: resumed, and the clock starts again.
        assert_eq!(
            s.observe(at(21), [(p(0), seen(Some(6), 12))]),
            vec![(p(0), Change::Resumed)]
        );
        assert!(s.stalled().is_empty());
        assert!(s.observe(at(30), [(p(0), seen(Some(6), 12))]).is_empty());
        assert_eq!(s.observe(at(31), [(p(0), seen(Some(6), 12))]).len(), 1);
    }

    #[test]
    fn a_partition_with_nothing_waiting_never_stalls() {
        let t0 = Instant::now();
        let mut s = Stalls::new(AFTER);
        for secs in [0, 20, 40] {
            let now = t0 + Duration::from_secs(secs);
            assert!(s.observe(now, [(p(0), seen(Some(9), 9))]).is_empty());
            assert!(s.observe(now, [(p(1), seen(None, 0))]).is_empty());
        }
        assert!(s.stalled().is_empty());
    }

    #[test]
    fn a_partition_nobody_ever_committed_stalls_when_messages_wait() {
        let t0 = Instant::now();
        let mut s = Stalls::new(AFTER);
        s.observe(t0, [(p(2), seen(None, 3)), (p(1), seen(Some(3), 3))]);
        let changes = s.observe(
            t0 + AFTER,
            [(p(2), seen(None, 3)), (p(1), seen(Some(3), 3))],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, p(2));
        assert_eq!(s.stalled(), vec![p(2)]);
    }

    #[test]
    fn waiting_counts_from_the_log_start_when_retention_passed_the_commit() {
        let s = Seen {
            committed: Some(2),
            start: 10,
            end: 15,
        };
        assert_eq!(s.waiting(), 5);
        assert_eq!(seen(Some(20), 15).waiting(), 0, "never negative");
    }
}
