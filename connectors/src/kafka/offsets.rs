//! Per-partition offset tracking for at-least-once commits.
//!
//! Invariant: the position a partition may commit is the smallest offset handed to the
//! topology and not yet done (acked, or dead-lettered after its retries), or one past the
//! highest offset handed over when nothing is outstanding. So a committed offset never
//! passes a record that was not fully processed, whatever order acks arrive in, and gaps
//! in the offsets (compaction, transaction markers) need no special case.

use std::collections::BTreeSet;

/// The offsets of one partition between the committed position and what was fetched.
#[derive(Clone, Debug, Default)]
pub struct PartitionOffsets {
    outstanding: BTreeSet<i64>,
    /// One past the highest offset handed over; `None` before the first record.
    next: Option<i64>,
    /// The last position committed (or known committed).
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// A partition nothing was fetched from yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record at `offset` was handed to the topology.
    pub fn fetched(&mut self, offset: i64) {
        self.outstanding.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Record at `offset` is done (acked or dead-lettered). Returns false if it was not
    /// outstanding (a duplicate ack).
    pub fn done(&mut self, offset: i64) -> bool {
        self.outstanding.remove(&offset)
    }

    /// The position to commit: the first offset not done (or one past the highest
    /// fetched). `None` before anything was fetched.
    pub fn position(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.next)
    }

    /// The position to commit if it moved since the last commit.
    pub fn committable(&self) -> Option<i64> {
        let p = self.position()?;
        (self.committed != Some(p)).then_some(p)
    }

    /// `position` was committed.
    pub fn mark_committed(&mut self, position: i64) {
        self.committed = Some(position);
    }

    /// Records fetched and not yet committable: from the commit position to the highest
    /// fetched offset (a record stuck at the head holds back everything after it).
    pub fn uncommitted(&self) -> i64 {
        match (self.position(), self.next) {
            (Some(p), Some(n)) => n - p,
            _ => 0,
        }
    }

    /// Number of records outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Fetch increasing offsets with gaps, finish them in any order: the commit position
        /// never passes an unfinished record and reaches the end once all are done.
        #[test]
        fn position_never_passes_an_unfinished_record(
            gaps in proptest::collection::vec(1i64..4, 1..200),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let mut offsets = PartitionOffsets::new();
            let mut fetched = Vec::new();
            let mut o = 10;
            for g in gaps {
                offsets.fetched(o);
                fetched.push(o);
                o += g;
            }
            let mut left = fetched.clone();
            for idx in order {
                if left.is_empty() { break; }
                let off = left.remove(idx.index(left.len()));
                prop_assert!(offsets.done(off));
                prop_assert!(!offsets.done(off), "second ack of the same offset is ignored");
                let p = offsets.position().unwrap();
                for f in &fetched {
                    if *f < p {
                        prop_assert!(!left.contains(f), "position {} passes unfinished {}", p, f);
                    }
                }
                prop_assert!(left.iter().all(|l| *l >= p));
            }
            for off in left.drain(..) {
                offsets.done(off);
            }
            prop_assert_eq!(offsets.position(), Some(*fetched.last().unwrap() + 1));
            prop_assert_eq!(offsets.uncommitted(), 0);
        }
    }

    #[test]
    fn committable_only_when_moved() {
        let mut p = PartitionOffsets::new();
        assert_eq!(p.committable(), None);
        p.fetched(5);
        p.fetched(6);
        assert_eq!(p.committable(), Some(5));
        p.mark_committed(5);
        assert_eq!(p.committable(), None);
        p.done(6);
        assert_eq!(p.committable(), None, "5 still blocks");
        assert_eq!(p.uncommitted(), 2);
        p.done(5);
        assert_eq!(p.committable(), Some(7));
    }
}
