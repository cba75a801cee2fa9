//! Offsets of one partition: what was received, what finished, and what may be committed.
//!
//! Kafka commits a single position per partition ("everything below this offset is done"),
//! while handlers finish out of order. So the committable position is the lowest offset still
//! pending (received and not finished), or one past the highest received when nothing is.
//! A position counts as committed only once the broker confirmed it: a failed or lost commit
//! is simply sent again on the next tick.

use std::collections::BTreeMap;

/// Bookkeeping of one assigned partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionOffsets {
    /// Received, not finished (queued or running), with the fingerprint of the record.
    pending: BTreeMap<i64, u64>,
    /// One past the highest offset received; the start position before any.
    next: Option<i64>,
    /// The last position the broker confirmed.
    acked: Option<i64>,
}

impl PartitionOffsets {
    /// A partition whose reading starts at `start` (already committed when `acked`).
    pub(crate) fn starting_at(start: Option<i64>, acked: bool) -> Self {
        PartitionOffsets {
            pending: BTreeMap::new(),
            next: start,
            acked: start.filter(|_| acked),
        }
    }

    /// A message was received; `fingerprint` tells records apart (a hash of their content).
    /// `false`: the record is pending already — the same offset with the same fingerprint, a
    /// second delivery of a record that is queued or running — and nothing changed. A
    /// different record at a pending offset (a partition re-created under us) is taken.
    pub(crate) fn received(&mut self, offset: i64, fingerprint: u64) -> bool {
        if self.pending.insert(offset, fingerprint) == Some(fingerprint) {
            return false;
        }
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
        true
    }

    /// Its handling finished (replied, dead-lettered, or given up for good).
    pub(crate) fn finished(&mut self, offset: i64) {
        self.pending.remove(&offset);
    }

    /// The position to commit, if it is ahead of the confirmed one.
    pub(crate) fn committable(&self) -> Option<i64> {
        let upto = self.pending.keys().next().copied().or(self.next)?;
        (self.acked.is_none_or(|a| upto > a)).then_some(upto)
    }

    /// The broker confirmed a commit of `position`.
    pub(crate) fn acked(&mut self, position: i64) {
        self.acked = Some(self.acked.map_or(position, |a| a.max(position)));
    }

    /// Whether the start position (or a first message) is known.
    pub(crate) fn is_resolved(&self) -> bool {
        self.next.is_some()
    }

    /// Whether messages are pending.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_below_the_lowest_unfinished() {
        let mut p = PartitionOffsets::starting_at(Some(10), true);
        assert_eq!(p.committable(), None, "the start is committed already");
        for o in 10..15 {
            assert!(p.received(o, 0));
        }
        assert_eq!(p.committable(), None, "10 is pending");
        p.finished(12);
        p.finished(13);
        assert_eq!(p.committable(), None, "out of order: 10 still pending");
        p.finished(10);
        assert_eq!(p.committable(), Some(11));
        p.finished(11);
        assert_eq!(p.committable(), Some(14));
        p.finished(14);
        assert_eq!(p.committable(), Some(15));
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn a_position_is_committed_only_when_confirmed() {
        let mut p = PartitionOffsets::starting_at(Some(0), false);
        assert_eq!(
            p.committable(),
            Some(0),
            "an unconfirmed start is committed"
        );
        assert!(p.received(0, 0));
        p.finished(0);
        assert_eq!(p.committable(), Some(1));
        // The commit of 1 was sent but failed: still committable on the next tick.
        assert_eq!(p.committable(), Some(1));
        p.acked(1);
        assert_eq!(p.committable(), None);
        p.acked(0); // a late confirmation of an older commit changes nothing
        assert_eq!(p.committable(), None);
        assert!(p.received(1, 0));
        p.finished(1);
        assert_eq!(p.committable(), Some(2));
    }

    #[test]
    fn a_second_delivery_of_a_pending_record_is_refused() {
        let mut p = PartitionOffsets::starting_at(Some(0), true);
        assert!(p.received(0, 7));
        assert!(!p.received(0, 7), "the same record again, still running");
        assert_eq!(p.pending(), 1);
        assert!(p.received(0, 8), "another record at that offset: taken");
        p.finished(0);
        assert_eq!(p.committable(), Some(1));
        assert!(p.received(0, 8), "once finished, a redelivery is a new run");
    }

    #[test]
    fn unknown_start_waits_for_the_first_message() {
        let mut p = PartitionOffsets::starting_at(None, false);
        assert_eq!(p.committable(), None);
        assert!(p.received(7, 0));
        assert_eq!(
            p.committable(),
            Some(7),
            "the pending offset itself is safe"
        );
        p.finished(7);
        assert_eq!(p.committable(), Some(8));
    }
}
