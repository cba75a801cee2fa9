//! Flow control: one lane per assigned partition, a global limit, and pause/resume.
//!
//! The consume loop never stops polling. Each received message goes into its partition's lane
//! and starts as soon as its lane (`per_partition`) and the server (`global`) have room. A lane
//! whose queue is full — a slow or stuck handler, a message being retried in place — asks for
//! its partition to be paused, and for it to be resumed once the queue has drained to half;
//! the other partitions go on. Lanes blocked only by the global limit wait their turn in
//! arrival order, so one busy partition cannot starve the rest. This module is pure
//! bookkeeping (no I/O): the consumer thread applies the pauses and commits, the handler tasks
//! report when they finish.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::offsets::PartitionOffsets;

/// A partition: (index of the topic in the server's topic list, partition number).
pub(crate) type Tp = (usize, i32);

/// Capacities of the lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Handlers running at once, over all partitions.
    pub(crate) global: usize,
    /// Handlers running at once in one partition.
    pub(crate) per_partition: usize,
    /// Messages waiting in one lane before its partition is paused (its own back-pressure: a
    /// stuck partition pauses only itself).
    pub(crate) lane_queue: usize,
    /// Bytes of records queued, running and parked over all lanes before every partition
    /// pauses (the server's memory bound); they resume once it is back to half.
    pub(crate) buffered_bytes: usize,
}

impl Limits {
    /// Limits for `global` / `per_partition` handlers at once.
    pub(crate) fn new(global: usize, per_partition: usize) -> Self {
        let per_partition = per_partition.clamp(1, global.max(1));
        Limits {
            global: global.max(1),
            per_partition,
            lane_queue: (2 * per_partition).max(16),
            buffered_bytes: usize::MAX,
        }
    }

    /// These limits with a byte budget for the records held.
    pub(crate) fn with_buffered_bytes(mut self, bytes: usize) -> Self {
        self.buffered_bytes = bytes.max(1);
        self
    }
}

/// A message to handle now.
#[derive(Debug)]
pub(crate) struct Job<M> {
    pub(crate) tp: Tp,
    pub(crate) epoch: u64,
    pub(crate) offset: i64,
    pub(crate) msg: M,
    /// Cancelled when the partition is taken away (after the grace period) or the server
    /// stops (after the drain timeout).
    pub(crate) cancel: CancellationToken,
}

#[derive(Debug)]
struct Lane<M> {
    epoch: u64,
    queue: VecDeque<(i64, M)>,
    running: usize,
    paused: bool,
    waiting: bool,
    revoking: bool,
    /// Records that could not reach a final outcome yet, to run again at the instant given;
    /// while any is here the partition stays paused and nothing else of it starts.
    parked: Vec<(i64, M, Instant)>,
    /// Bytes of this lane's records held (queued, running, parked).
    bytes: usize,
    offsets: PartitionOffsets,
    cancel: CancellationToken,
}

/// What [`Lanes::push`] did with a message.
#[derive(Debug)]
#[cfg(test)]
pub(crate) enum Pushed<M> {
    /// Queued; these jobs start now.
    Queued(Vec<Job<M>>),
    /// Refused (see [`Refused`]).
    Refused(Refused<M>),
}

/// A message [`Lanes::push_into`] gives back.
#[derive(Debug)]
pub(crate) enum Refused<M> {
    /// Not ours: the partition is not assigned (a late message of a revoked partition).
    NotAssigned(M),
    /// A second delivery of a record that is queued or running here already.
    Duplicate(M),
}

/// The lanes of a server.
#[derive(Debug)]
pub(crate) struct Lanes<M> {
    limits: Limits,
    lanes: HashMap<Tp, Lane<M>>,
    running: usize,
    /// Lanes with work that wait for a global slot, in arrival order.
    waiting: VecDeque<Tp>,
    paused: BTreeSet<Tp>,
    to_pause: Vec<Tp>,
    to_resume: Vec<Tp>,
    next_epoch: u64,
    stopping: bool,
    root: CancellationToken,
    /// Size of each record held (queued, running, parked) by (lane epoch, offset): epochs are
    /// unique, so a record of a revoked lane still running is found when it ends.
    held: HashMap<(u64, i64), usize>,
    /// Their sum.
    buffered: usize,
    /// Over the byte budget: every partition is paused until `buffered` is back to half.
    over_budget: bool,
}

impl<M> Lanes<M> {
    pub(crate) fn new(limits: Limits) -> Self {
        Lanes {
            limits,
            lanes: HashMap::new(),
            running: 0,
            waiting: VecDeque::new(),
            paused: BTreeSet::new(),
            to_pause: Vec::new(),
            to_resume: Vec::new(),
            next_epoch: 0,
            stopping: false,
            root: CancellationToken::new(),
            held: HashMap::new(),
            buffered: 0,
            over_budget: false,
        }
    }

    /// Bytes of the records held now.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    fn hold(&mut self, tp: Tp, key: (u64, i64), size: usize) {
        let old = self.held.insert(key, size).unwrap_or(0);
        self.buffered = self.buffered - old + size;
        if let Some(lane) = self.lanes.get_mut(&tp).filter(|l| l.epoch == key.0) {
            lane.bytes = lane.bytes - old + size;
        }
    }

    fn release(&mut self, tp: Tp, key: (u64, i64)) {
        let Some(size) = self.held.remove(&key) else {
            return;
        };
        self.buffered -= size;
        if let Some(lane) = self.lanes.get_mut(&tp).filter(|l| l.epoch == key.0) {
            lane.bytes = lane.bytes.saturating_sub(size);
        }
    }

    /// Pauses every partition past the byte budget, resumes them at half of it. Parked lanes
    /// do not count towards the resume (they are paused on their own, holding at most their
    /// queue): one refused dead letter must not stop every partition.
    fn check_budget(&mut self) {
        let limit = self.limits.buffered_bytes;
        // The common case, without a pass over the lanes: under the budget, parked or not.
        if !self.over_budget && self.buffered <= limit {
            return;
        }
        let parked: usize = self
            .lanes
            .values()
            .filter(|l| !l.parked.is_empty())
            .map(|l| l.bytes)
            .sum();
        let counted = self.buffered.saturating_sub(parked);
        if !self.over_budget && counted > limit {
            self.over_budget = true;
            self.to_pause.extend(self.lanes.keys().copied());
        } else if self.over_budget && counted <= limit / 2 {
            self.over_budget = false;
            let lanes = &self.lanes;
            self.to_resume
                .extend(lanes.iter().filter(|(_, l)| !l.paused).map(|(tp, _)| *tp));
        }
    }

    /// A partition was assigned, reading from `start` (`acked`: that position is committed).
    pub(crate) fn assign(&mut self, tp: Tp, start: Option<i64>, acked: bool) {
        self.next_epoch += 1;
        let lane = Lane {
            epoch: self.next_epoch,
            queue: VecDeque::new(),
            running: 0,
            paused: false,
            waiting: false,
            revoking: false,
            parked: Vec::new(),
            bytes: 0,
            offsets: PartitionOffsets::starting_at(start, acked),
            cancel: self.root.child_token(),
        };
        if let Some(old) = self.lanes.insert(tp, lane) {
            old.cancel.cancel();
        }
        self.paused.remove(&tp);
        // librdkafka keeps a partition's pause across an unassign and an assign: say which.
        if self.over_budget {
            self.to_pause.push(tp);
        } else {
            self.to_resume.push(tp);
        }
    }

    /// A message arrived.
    #[cfg(test)]
    pub(crate) fn push(&mut self, tp: Tp, offset: i64, msg: M) -> Pushed<M> {
        self.push_record(tp, offset, 0, msg)
    }

    /// [`Lanes::push`] of a record with its fingerprint (what tells records at one offset
    /// apart).
    #[cfg(test)]
    pub(crate) fn push_record(
        &mut self,
        tp: Tp,
        offset: i64,
        fingerprint: u64,
        msg: M,
    ) -> Pushed<M> {
        let mut jobs = Vec::new();
        match self.push_into(tp, offset, (fingerprint, 0), msg, &mut jobs) {
            Ok(()) => Pushed::Queued(jobs),
            Err(refused) => Pushed::Refused(refused),
        }
    }

    /// [`Lanes::push`], adding the jobs that start now to `jobs` (a buffer the consumer
    /// thread reuses: no allocation per message). `Err` gives back a message that is not ours,
    /// or that is here already: a broker or client that delivers a record twice (seen with
    /// the test broker right after an assignment) must not run its handler twice at once.
    ///
    /// `record`: the record's fingerprint and its size in bytes (counted against the byte
    /// budget until its job ends).
    pub(crate) fn push_into(
        &mut self,
        tp: Tp,
        offset: i64,
        (fingerprint, size): (u64, usize),
        msg: M,
        jobs: &mut Vec<Job<M>>,
    ) -> Result<(), Refused<M>> {
        let Some(lane) = self.lanes.get_mut(&tp).filter(|l| !l.revoking) else {
            return Err(Refused::NotAssigned(msg));
        };
        if self.stopping {
            return Err(Refused::NotAssigned(msg));
        }
        if !lane.offsets.received(offset, fingerprint) {
            return Err(Refused::Duplicate(msg));
        }
        lane.queue.push_back((offset, msg));
        let epoch = lane.epoch;
        self.hold(tp, (epoch, offset), size);
        self.fill(tp, jobs);
        let lane = self.lanes.get_mut(&tp).expect("lane");
        if !lane.paused && lane.queue.len() >= self.limits.lane_queue {
            lane.paused = true;
            self.paused.insert(tp);
            self.to_pause.push(tp);
        }
        self.check_budget();
        Ok(())
    }

    /// A job ended. `done`: its outcome is final (replied, dead-lettered), so its offset may
    /// be committed; `false` for a job cancelled half-way (its message is redelivered).
    pub(crate) fn finish(&mut self, tp: Tp, epoch: u64, offset: i64, done: bool) -> Vec<Job<M>> {
        self.running -= 1;
        self.release(tp, (epoch, offset));
        let mut jobs = Vec::new();
        if let Some(lane) = self.lanes.get_mut(&tp).filter(|l| l.epoch == epoch) {
            lane.running -= 1;
            if done {
                lane.offsets.finished(offset);
            }
        }
        self.fill(tp, &mut jobs);
        self.check_budget();
        jobs
    }

    /// A job could not reach a final outcome now (its dead-letter copy was refused for good):
    /// its slots are freed, its offset stays uncommitted, its partition pauses, and nothing
    /// else of it starts until [`Lanes::unpark_due`] runs the record again after `until`.
    pub(crate) fn park(
        &mut self,
        tp: Tp,
        epoch: u64,
        offset: i64,
        msg: M,
        until: Instant,
    ) -> Vec<Job<M>> {
        self.running -= 1;
        let mut jobs = Vec::new();
        match self
            .lanes
            .get_mut(&tp)
            .filter(|l| l.epoch == epoch && !l.revoking)
        {
            Some(lane) => {
                lane.running -= 1;
                lane.parked.push((offset, msg, until));
                if !lane.paused {
                    lane.paused = true;
                    self.paused.insert(tp);
                    self.to_pause.push(tp);
                }
            }
            None => {
                // Revoked meanwhile: the next owner handles the record; its bytes go.
                if let Some(lane) = self.lanes.get_mut(&tp).filter(|l| l.epoch == epoch) {
                    lane.running -= 1;
                }
                self.release(tp, (epoch, offset));
            }
        }
        self.fill(tp, &mut jobs);
        self.check_budget();
        jobs
    }

    /// Puts parked records whose time has come back at the head of their lanes; returns the
    /// jobs that start now.
    pub(crate) fn unpark_due(&mut self, now: Instant) -> Vec<Job<M>> {
        let mut due = Vec::new();
        for (tp, lane) in &mut self.lanes {
            if lane.parked.iter().any(|(_, _, until)| *until <= now) {
                lane.parked
                    .sort_by_key(|(offset, _, _)| std::cmp::Reverse(*offset));
                for (offset, msg, _) in lane.parked.drain(..) {
                    lane.queue.push_front((offset, msg));
                }
                due.push(*tp);
            }
        }
        let mut jobs = Vec::new();
        for tp in due {
            self.fill(tp, &mut jobs);
        }
        self.check_budget();
        jobs
    }

    /// Partitions with parked records, with the offset of the first.
    pub(crate) fn parked(&self) -> Vec<(Tp, i64)> {
        self.lanes
            .iter()
            .filter_map(|(tp, lane)| {
                let first = lane.parked.iter().map(|(offset, _, _)| *offset).min()?;
                Some((*tp, first))
            })
            .collect()
    }

    /// Starts what may start: lanes that waited for a global slot first, then `tp`.
    fn fill(&mut self, tp: Tp, jobs: &mut Vec<Job<M>>) {
        while self.running < self.limits.global {
            let Some(waiting) = self.waiting.pop_front() else {
                break;
            };
            if let Some(lane) = self.lanes.get_mut(&waiting) {
                lane.waiting = false;
            }
            self.start_from(waiting, jobs);
        }
        self.start_from(tp, jobs);
        self.resume_drained();
    }

    fn start_from(&mut self, tp: Tp, jobs: &mut Vec<Job<M>>) {
        let Some(lane) = self.lanes.get_mut(&tp) else {
            return;
        };
        if lane.revoking || self.stopping || !lane.parked.is_empty() {
            return;
        }
        while lane.running < self.limits.per_partition && !lane.queue.is_empty() {
            if self.running >= self.limits.global {
                if !lane.waiting {
                    lane.waiting = true;
                    self.waiting.push_back(tp);
                }
                return;
            }
            let (offset, msg) = lane.queue.pop_front().expect("non-empty");
            self.running += 1;
            lane.running += 1;
            jobs.push(Job {
                tp,
                epoch: lane.epoch,
                offset,
                msg,
                cancel: lane.cancel.clone(),
            });
        }
    }

    fn resume_drained(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let half = self.limits.lane_queue / 2;
        let lanes = &mut self.lanes;
        let to_resume = &mut self.to_resume;
        self.paused.retain(|tp| match lanes.get_mut(tp) {
            Some(lane) if lane.queue.len() <= half && lane.parked.is_empty() => {
                lane.paused = false;
                to_resume.push(*tp);
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// Partitions are being taken away: their queued messages are dropped (the next owner
    /// reads them from the committed position), nothing new starts in them. Returns how many
    /// messages were dropped.
    pub(crate) fn revoke(&mut self, tps: &[Tp]) -> usize {
        let mut dropped = 0;
        let mut released = Vec::new();
        for tp in tps {
            if let Some(lane) = self.lanes.get_mut(tp) {
                lane.revoking = true;
                dropped += lane.queue.len() + lane.parked.len();
                let epoch = lane.epoch;
                released.extend(
                    lane.queue
                        .drain(..)
                        .map(|(offset, _)| (*tp, (epoch, offset))),
                );
                released.extend(
                    lane.parked
                        .drain(..)
                        .map(|(offset, _, _)| (*tp, (epoch, offset))),
                );
                lane.paused = false;
            }
            self.paused.remove(tp);
        }
        for (tp, key) in released {
            self.release(tp, key);
        }
        self.waiting.retain(|tp| !tps.contains(tp));
        self.check_budget();
        dropped
    }

    /// Handlers running in `tps`.
    pub(crate) fn running_in(&self, tps: &[Tp]) -> usize {
        tps.iter()
            .filter_map(|tp| self.lanes.get(tp))
            .map(|l| l.running)
            .sum()
    }

    /// Forgets revoked partitions, cancelling handlers still running in them (their messages
    /// are not committed: the next owner handles them).
    pub(crate) fn remove(&mut self, tps: &[Tp]) {
        for tp in tps {
            if let Some(lane) = self.lanes.remove(tp) {
                lane.cancel.cancel();
            }
            self.paused.remove(tp);
        }
        self.waiting.retain(|tp| !tps.contains(tp));
    }

    /// The server stops: queued messages are dropped, nothing new starts.
    pub(crate) fn stop(&mut self) {
        self.stopping = true;
        let all: Vec<Tp> = self.lanes.keys().copied().collect();
        self.revoke(&all);
    }

    /// Cancels every running handler (after the drain timeout).
    pub(crate) fn cancel_all(&self) {
        self.root.cancel();
    }

    /// Whether partitions are assigned and each has a known start position.
    pub(crate) fn is_ready(&self) -> bool {
        !self.lanes.is_empty()
            && self
                .lanes
                .values()
                .all(|l| !l.revoking && l.offsets.is_resolved())
    }

    /// `tp` is read again from its start (the broker lost its state): what was pending refers
    /// to records that no longer exist.
    pub(crate) fn restart(&mut self, tp: Tp) {
        if let Some(lane) = self.lanes.get_mut(&tp) {
            lane.offsets = PartitionOffsets::starting_at(None, false);
        }
    }

    /// Handlers running.
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    /// Assigned partitions.
    pub(crate) fn assigned(&self) -> impl Iterator<Item = Tp> + '_ {
        self.lanes.keys().copied()
    }

    /// Positions to commit (of `only`, or of every partition).
    pub(crate) fn committable(&self, only: Option<&[Tp]>) -> Vec<(Tp, i64)> {
        let pick = |tp: &Tp| only.is_none_or(|o| o.contains(tp));
        self.lanes
            .iter()
            .filter(|(tp, _)| pick(tp))
            .filter_map(|(tp, lane)| lane.offsets.committable().map(|o| (*tp, o)))
            .collect()
    }

    /// The broker confirmed a commit of `position` in `tp`.
    pub(crate) fn acked(&mut self, tp: Tp, position: i64) {
        if let Some(lane) = self.lanes.get_mut(&tp) {
            lane.offsets.acked(position);
        }
    }

    /// Pauses and resumes to apply (each partition at most once per call, last word wins).
    pub(crate) fn take_flow_changes(&mut self) -> (Vec<Tp>, Vec<Tp>) {
        let mut pause = std::mem::take(&mut self.to_pause);
        let mut resume = std::mem::take(&mut self.to_resume);
        let over = self.over_budget;
        pause.retain(|tp| self.lanes.get(tp).is_some_and(|l| l.paused || over));
        resume.retain(|tp| self.lanes.get(tp).is_some_and(|l| !l.paused && !over));
        pause.sort_unstable();
        resume.sort_unstable();
        pause.dedup();
        resume.dedup();
        (pause, resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs<M>(p: Pushed<M>) -> Vec<Job<M>> {
        match p {
            Pushed::Queued(j) => j,
            Pushed::Refused(Refused::NotAssigned(_)) => panic!("not assigned"),
            Pushed::Refused(Refused::Duplicate(_)) => panic!("a duplicate"),
        }
    }

    fn lanes(global: usize, per_partition: usize) -> Lanes<&'static str> {
        let mut l = Lanes::new(Limits::new(global, per_partition));
        for p in 0..3 {
            l.assign((0, p), Some(0), true);
        }
        assert_eq!(
            l.take_flow_changes(),
            (vec![], vec![(0, 0), (0, 1), (0, 2)]),
            "assigned partitions are resumed (librdkafka keeps a pause across reassignments)"
        );
        l
    }

    #[test]
    fn one_per_partition_keeps_order_while_partitions_run_in_parallel() {
        let mut l = lanes(8, 1);
        let a = jobs(l.push((0, 0), 0, "a0"));
        assert_eq!(a.len(), 1);
        assert!(jobs(l.push((0, 0), 1, "a1")).is_empty(), "a0 still runs");
        let b = jobs(l.push((0, 1), 0, "b0"));
        assert_eq!(b.len(), 1, "another partition is not held up");
        let next = l.finish((0, 0), a[0].epoch, 0, true);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].msg, "a1");
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 1)]);
    }

    #[test]
    fn a_stuck_lane_pauses_only_its_partition() {
        let mut l = lanes(64, 1);
        let stuck = jobs(l.push((0, 0), 0, "stuck"));
        for o in 1..=16 {
            let _ = l.push((0, 0), o, "behind");
        }
        let (pause, resume) = l.take_flow_changes();
        assert_eq!(pause, vec![(0, 0)]);
        assert!(resume.is_empty());
        for o in (0..100).step_by(2) {
            // Two at a time: one runs, one waits in its lane.
            let started = jobs(l.push((0, 1), o, "other"));
            assert!(jobs(l.push((0, 1), o + 1, "other")).is_empty());
            assert_eq!(started.len(), 1);
            let next = l.finish((0, 1), started[0].epoch, o, true);
            assert_eq!(next.len(), 1);
            assert!(l.finish((0, 1), next[0].epoch, o + 1, true).is_empty());
        }
        assert_eq!(
            l.take_flow_changes(),
            (vec![], vec![]),
            "partition 1 never paused"
        );
        // The stuck handler ends (timeout): the lane drains, the partition is resumed.
        let mut next = l.finish((0, 0), stuck[0].epoch, 0, true);
        while let Some(j) = next.pop() {
            next.extend(l.finish(j.tp, j.epoch, j.offset, true));
        }
        assert_eq!(l.take_flow_changes(), (vec![], vec![(0, 0)]));
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 17)]);
    }

    #[test]
    fn the_global_limit_is_shared_in_turn() {
        let mut l = lanes(2, 2);
        let a = jobs(l.push((0, 0), 0, "a0"));
        let a1 = jobs(l.push((0, 0), 1, "a1"));
        assert_eq!(a.len() + a1.len(), 2);
        assert!(jobs(l.push((0, 1), 0, "b0")).is_empty(), "global limit");
        assert!(jobs(l.push((0, 0), 2, "a2")).is_empty());
        // a0 ends: b0 waited longer than a2 and goes first.
        let next = l.finish((0, 0), a[0].epoch, 0, true);
        assert_eq!(next.iter().map(|j| j.msg).collect::<Vec<_>>(), vec!["b0"]);
        assert_eq!(l.running(), 2);
    }

    #[test]
    fn revoked_partitions_drop_their_queue_and_ignore_late_finishes() {
        let mut l = lanes(8, 1);
        let first = jobs(l.push((0, 0), 4, "first"));
        let _ = l.finish((0, 0), first[0].epoch, 4, true);
        let running = jobs(l.push((0, 0), 5, "running"));
        let _ = l.push((0, 0), 6, "queued");
        assert_eq!(l.revoke(&[(0, 0)]), 1);
        assert!(matches!(
            l.push((0, 0), 7, "late"),
            Pushed::Refused(Refused::NotAssigned(_))
        ));
        assert_eq!(l.running_in(&[(0, 0)]), 1);
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 5)]);
        l.remove(&[(0, 0)]);
        assert!(
            running[0].cancel.is_cancelled(),
            "still running after the grace"
        );
        // Re-assigned while the old handler is still winding down.
        l.assign((0, 0), Some(5), true);
        let fresh = jobs(l.push((0, 0), 5, "again"));
        assert_eq!(fresh.len(), 1);
        assert_eq!(l.running(), 2);
        // The old epoch's finish frees its global slot but does not touch the new lane.
        assert!(l.finish((0, 0), running[0].epoch, 5, true).is_empty());
        assert_eq!(l.running(), 1);
        assert_eq!(l.running_in(&[(0, 0)]), 1);
        assert_eq!(
            l.committable(Some(&[(0, 0)])),
            vec![],
            "5 still pending in the new lane"
        );
        let _ = l.finish((0, 0), fresh[0].epoch, 5, true);
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 6)]);
    }

    #[test]
    fn a_record_delivered_twice_runs_once() {
        let mut l = lanes(8, 1);
        let first = jobs(l.push_record((0, 0), 3, 42, "r3"));
        assert_eq!(first.len(), 1);
        assert!(matches!(
            l.push_record((0, 0), 3, 42, "r3 again"),
            Pushed::Refused(Refused::Duplicate("r3 again"))
        ));
        let next = jobs(l.push_record((0, 0), 4, 43, "r4"));
        assert!(next.is_empty(), "r3 still runs");
        let after = l.finish((0, 0), first[0].epoch, 3, true);
        assert_eq!(after.iter().map(|j| j.msg).collect::<Vec<_>>(), vec!["r4"]);
        let _ = l.finish((0, 0), after[0].epoch, 4, true);
        assert_eq!(l.running(), 0, "nothing else ran");
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 5)]);
    }

    #[test]
    fn a_parked_record_holds_its_partition_paused_without_a_slot_and_runs_again() {
        let mut l = lanes(1, 1);
        let j = jobs(l.push((0, 0), 7, "refused"));
        assert!(jobs(l.push((0, 0), 8, "behind")).is_empty());
        assert!(
            jobs(l.push((0, 1), 0, "other")).is_empty(),
            "one slot, taken"
        );
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(30);
        let next = l.park((0, 0), j[0].epoch, 7, "refused", later);
        assert_eq!(
            next.iter().map(|j| j.msg).collect::<Vec<_>>(),
            vec!["other"],
            "the parked record gave its slot back"
        );
        assert_eq!(l.take_flow_changes(), (vec![(0, 0)], vec![]));
        assert_eq!(l.parked(), vec![((0, 0), 7)]);
        assert!(l.unpark_due(now).is_empty(), "not yet");
        assert_eq!(
            l.committable(Some(&[(0, 0)])),
            vec![((0, 0), 7)],
            "up to 7, not past it: 7 is not final"
        );
        let _ = l.finish((0, 1), next[0].epoch, 0, true);
        assert!(
            l.take_flow_changes().1.is_empty(),
            "stays paused while parked"
        );
        let again = l.unpark_due(later);
        assert_eq!(
            again.iter().map(|j| j.msg).collect::<Vec<_>>(),
            vec!["refused"]
        );
        assert!(l.parked().is_empty());
        let after = l.finish((0, 0), again[0].epoch, 7, true);
        assert_eq!(
            after.iter().map(|j| j.msg).collect::<Vec<_>>(),
            vec!["behind"]
        );
        let _ = l.finish((0, 0), after[0].epoch, 8, true);
        assert_eq!(l.committable(Some(&[(0, 0)])), vec![((0, 0), 9)]);
        assert_eq!(
            l.take_flow_changes().1,
            vec![(0, 0)],
            "resumed once drained"
        );
    }

    #[test]
    fn past_the_byte_budget_every_partition_pauses_until_half_of_it_is_left() {
        let mut l: Lanes<&str> = Lanes::new(Limits::new(8, 1).with_buffered_bytes(100));
        for p in 0..3 {
            l.assign((0, p), Some(0), true);
        }
        let _ = l.take_flow_changes();
        let mut jobs = Vec::new();
        for (p, o) in [(0, 0), (0, 1), (1, 0)] {
            l.push_into((0, p), o, (o as u64, 40), "x", &mut jobs)
                .unwrap();
        }
        assert_eq!(l.buffered(), 120, "queued and running records count");
        let (pause, resume) = l.take_flow_changes();
        assert_eq!(
            pause,
            vec![(0, 0), (0, 1), (0, 2)],
            "every partition, idle ones too"
        );
        assert!(resume.is_empty());
        // A partition assigned while over budget starts paused.
        l.assign((0, 3), Some(0), true);
        assert_eq!(l.take_flow_changes().0, vec![(0, 3)]);
        let running = std::mem::take(&mut jobs);
        assert_eq!(running.len(), 2, "(0,0)@0 and (0,1)@0 run, (0,0)@1 waits");
        let next = l.finish((0, 0), running[0].epoch, 0, true);
        assert_eq!(l.buffered(), 80);
        assert_eq!(
            l.take_flow_changes(),
            (vec![], vec![]),
            "80 > 50: still paused"
        );
        let _ = l.finish((0, 1), running[1].epoch, 0, true);
        assert_eq!(l.buffered(), 40);
        let (pause, resume) = l.take_flow_changes();
        assert!(pause.is_empty());
        assert_eq!(
            resume,
            vec![(0, 0), (0, 1), (0, 2), (0, 3)],
            "back under half"
        );
        // Revoked queued records and old-epoch finishes give their bytes back.
        assert_eq!(next.len(), 1);
        l.revoke(&[(0, 0)]);
        l.remove(&[(0, 0)]);
        let _ = l.finish((0, 0), next[0].epoch, 1, true);
        assert_eq!(l.buffered(), 0);
    }

    #[test]
    fn a_parked_lane_does_not_hold_the_budget_and_a_revoked_one_gives_its_bytes_back() {
        let mut l: Lanes<&str> = Lanes::new(Limits::new(8, 1).with_buffered_bytes(100));
        for p in 0..2 {
            l.assign((0, p), Some(0), true);
        }
        let _ = l.take_flow_changes();
        let mut jobs = Vec::new();
        l.push_into((0, 0), 0, (0, 60), "refused", &mut jobs)
            .unwrap();
        l.push_into((0, 1), 0, (1, 60), "other", &mut jobs).unwrap();
        assert!(l.take_flow_changes().0.len() == 2, "120 > 100: all paused");
        let later = Instant::now() + std::time::Duration::from_secs(30);
        let _ = l.park((0, 0), jobs[0].epoch, 0, "refused", later);
        let _ = l.finish((0, 1), jobs[1].epoch, 0, true);
        let (_, resume) = l.take_flow_changes();
        assert_eq!(
            resume,
            vec![(0, 1)],
            "the parked lane's 60 bytes do not keep (0, 1) paused"
        );
        assert_eq!(l.buffered(), 60, "but they are still held");
        // A record parked after its partition was revoked is the next owner's: released.
        l.push_into((0, 1), 1, (2, 30), "late", &mut jobs).unwrap();
        let late = jobs.pop().unwrap();
        l.revoke(&[(0, 1)]);
        let _ = l.park((0, 1), late.epoch, 1, "late", later);
        l.remove(&[(0, 1)]);
        assert_eq!(l.buffered(), 60);
        assert_eq!(l.running(), 0);
    }

    #[test]
    fn cancelled_jobs_leave_their_offset_uncommitted() {
        let mut l = lanes(8, 1);
        let j = jobs(l.push((0, 2), 0, "x"));
        let _ = l.finish((0, 2), j[0].epoch, 0, false);
        assert_eq!(l.committable(Some(&[(0, 2)])), vec![]);
        l.stop();
        assert!(matches!(
            l.push((0, 1), 0, "y"),
            Pushed::Refused(Refused::NotAssigned(_))
        ));
    }
}
