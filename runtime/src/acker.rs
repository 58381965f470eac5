//! Guaranteed processing: Storm's tuple-tree tracking by XOR of random 64-bit ids.
//!
//! # The accounting
//!
//! A tracked spout tuple starts a tree with a random, non-zero *root* id. Every tuple copy
//! delivered to a task carries, per root it descends from, the XOR of random *edge* ids
//! (one per anchor). The tree's value at the acker is the XOR of every edge created and
//! every edge acked:
//!
//! - the spout sends `Init(root, e1 ^ e2 ^ ...)` for the copies of its tuple, *before* it
//!   hands the copies to the queues;
//! - a bolt acking input `t` sends, for each root of `t`, `Ack(root, edge(t, root) ^
//!   ack_val(t))`, where `ack_val(t)` is the XOR of the edges of every child anchored to
//!   `t` (so creating a child and acking its parent travel in one message);
//! - each edge thus enters the value twice (created, acked) and the value is zero exactly
//!   when every tuple of the tree was acked (up to a 2^-64 chance of a random collision).
//!
//! The tree completes when its value is zero; the spout's `ack(msg_id)` follows. A `Fail`
//! for any tuple of the tree fails it at once (`fail(msg_id, reason)`). Every acker holds
//! a tree from its `Init` until its outcome, then forgets it; messages for unknown roots
//! (a tree already completed or failed) are ignored. Because an `Init` is sent before the
//! tuples it covers are enqueued and each acker reads one FIFO channel, no message about a
//! tree can reach its acker before the tree's `Init`: a tree is reported exactly once,
//! acked or failed, never both.
//!
//! # Timeouts
//!
//! See the crate docs: the timeout clock of a tuple runs only while it is inside a bolt
//! (taken from the queue and not yet acked or failed), never while it waits in a queue.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use squall_topology::{FailReason, TupleEdges};

/// What the acker tells a spout task about one of its trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every tuple of the tree was acked.
    Acked { root: u64, spout: u32 },
    /// A tuple of the tree failed.
    Failed {
        root: u64,
        spout: u32,
        reason: FailReason,
    },
}

/// One message to an acker.
#[derive(Clone, Debug)]
pub(crate) enum AckerMsg {
    /// A spout task (index `spout` among all spout tasks) starts tree `root`.
    Init { root: u64, val: u64, spout: u32 },
    /// XOR `val` into the tree's value.
    Ack { root: u64, val: u64 },
    /// Fail the tree.
    Fail { root: u64, reason: FailReason },
}

impl AckerMsg {
    pub(crate) fn root(&self) -> u64 {
        match self {
            AckerMsg::Init { root, .. }
            | AckerMsg::Ack { root, .. }
            | AckerMsg::Fail { root, .. } => *root,
        }
    }
}

/// Hashes the random 64-bit ids used as keys by taking them as they are: they are
/// already uniformly distributed, and SipHash would cost more than the rest of an ack.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A map keyed by random 64-bit ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// One tracked tree: its running XOR and the spout task that owns it (16 bytes).
#[derive(Clone, Copy, Debug)]
struct Tree {
    val: u64,
    spout: u32,
}

/// The state of one acker: the trees in flight whose roots hash to it.
#[derive(Debug, Default)]
pub(crate) struct AckerState {
    trees: IdMap<u64, Tree>,
}

impl AckerState {
    /// Applies one message; returns the tree's outcome if it is decided now.
    pub(crate) fn apply(&mut self, msg: AckerMsg) -> Option<Outcome> {
        match msg {
            AckerMsg::Init { root, val, spout } => {
                if val == 0 {
                    // No copy was delivered anywhere: nothing to wait for.
                    return Some(Outcome::Acked { root, spout });
                }
                self.trees.insert(root, Tree { val, spout });
                None
            }
            AckerMsg::Ack { root, val } => {
                let tree = self.trees.get_mut(&root)?;
                tree.val ^= val;
                if tree.val == 0 {
                    let spout = tree.spout;
                    self.trees.remove(&root);
                    Some(Outcome::Acked { root, spout })
                } else {
                    None
                }
            }
            AckerMsg::Fail { root, reason } => {
                let tree = self.trees.remove(&root)?;
                Some(Outcome::Failed {
                    root,
                    spout: tree.spout,
                    reason,
                })
            }
        }
    }

    /// Number of trees in flight.
    pub(crate) fn len(&self) -> usize {
        self.trees.len()
    }

    /// Bytes the acker holds per tracked tree, counting the hash table's slots and control
    /// bytes at its current capacity.
    pub(crate) fn bytes_per_tree(&self) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        let slot = std::mem::size_of::<(u64, Tree)>() + 1;
        (self.trees.capacity() * slot) as f64 / self.trees.len() as f64
    }
}

/// Which acker a root belongs to.
pub(crate) fn acker_of(root: u64, ackers: usize) -> usize {
    // Roots are uniformly random, so their high bits spread evenly.
    ((root >> 32) % ackers as u64) as usize
}

/// The key of a tracked tuple: its first `(root, edge)` pair, unique with overwhelming
/// probability (edges are random 64-bit ids).
pub(crate) type TupleKey = (u64, u64);

fn key_of(edges: &TupleEdges) -> Option<TupleKey> {
    edges.first().copied()
}

/// A bolt task's bookkeeping of the tuples it has taken and not yet acked or failed: the
/// input being executed and the tuples the bolt holds, each with its accumulated ack value
/// (the XOR of the edges of the children anchored to it).
pub(crate) struct EdgeBook {
    rng: SmallRng,
    current: Option<(TupleKey, u64)>,
    held: IdMap<TupleKey, (TupleEdges, u64)>,
}

impl EdgeBook {
    pub(crate) fn new(seed: u64) -> Self {
        EdgeBook {
            rng: SmallRng::seed_from_u64(seed),
            current: None,
            held: IdMap::default(),
        }
    }

    /// A fresh non-zero random id.
    pub(crate) fn new_id(&mut self) -> u64 {
        loop {
            let id = self.rng.next_u64();
            if id != 0 {
                return id;
            }
        }
    }

    /// Starts executing `input` (with `edges`).
    pub(crate) fn begin(&mut self, edges: &TupleEdges) {
        self.current = key_of(edges).map(|k| (k, 0));
    }

    fn ack_val_mut(&mut self, key: TupleKey) -> Option<&mut u64> {
        match &mut self.current {
            Some((k, v)) if *k == key => Some(v),
            _ => self.held.get_mut(&key).map(|(_, v)| v),
        }
    }

    /// The edges of one delivered copy of a child anchored to `anchors` (the tracked
    /// tuples' edge lists): one new edge per anchor, XORed into that anchor's ack value
    /// and, per root of the anchor, into the child's edge for that root. Anchors the bolt
    /// no longer has (already acked or failed) are skipped: a child of a finished tuple
    /// could never complete its tree.
    pub(crate) fn child_edges<'a>(
        &mut self,
        anchors: impl IntoIterator<Item = &'a TupleEdges>,
    ) -> TupleEdges {
        let mut out = TupleEdges::new();
        for anchor in anchors {
            let Some(key) = key_of(anchor) else { continue };
            let edge = self.new_id();
            let Some(val) = self.ack_val_mut(key) else {
                tracing::warn!(
                    "emit anchored to a tuple this bolt already acked or failed; anchor ignored"
                );
                continue;
            };
            *val ^= edge;
            for &(root, _) in anchor.iter() {
                match out.iter_mut().find(|(r, _)| *r == root) {
                    Some((_, e)) => *e ^= edge,
                    None => out.push((root, edge)),
                }
            }
        }
        out
    }

    /// Finishes the current input: its ack messages if `ack`, else `None` when it is held
    /// or untracked. Call `hold_current` instead to keep it.
    pub(crate) fn take_current(&mut self) -> Option<(TupleKey, u64)> {
        self.current.take()
    }

    /// Keeps the current input (with `edges`) for a later ack or fail.
    pub(crate) fn hold_current(&mut self, edges: TupleEdges) -> Option<TupleKey> {
        let (key, val) = self.current.take()?;
        self.held.insert(key, (edges, val));
        Some(key)
    }

    /// Removes a held tuple, or the current input, by its edges: its edges and ack value.
    pub(crate) fn release(&mut self, edges: &TupleEdges) -> Option<(TupleEdges, u64)> {
        let key = key_of(edges)?;
        if let Some((k, v)) = self.current {
            if k == key {
                self.current = None;
                return Some((edges.clone(), v));
            }
        }
        self.held.remove(&key)
    }

    /// Removes a held tuple by key (timeouts).
    pub(crate) fn release_key(&mut self, key: TupleKey) -> Option<(TupleEdges, u64)> {
        self.held.remove(&key)
    }
}

/// The ack messages for a tuple with `edges` and accumulated `ack_val`.
pub(crate) fn ack_msgs(edges: &TupleEdges, ack_val: u64) -> impl Iterator<Item = AckerMsg> + '_ {
    edges.iter().map(move |&(root, edge)| AckerMsg::Ack {
        root,
        val: edge ^ ack_val,
    })
}

/// The fail messages for a tuple with `edges`.
pub(crate) fn fail_msgs<'a>(
    edges: &'a TupleEdges,
    reason: &'a FailReason,
) -> impl Iterator<Item = AckerMsg> + 'a {
    edges.iter().map(move |&(root, _)| AckerMsg::Fail {
        root,
        reason: reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    //! Property: whatever the tree shapes (fan-out, multi-anchoring with held tuples) and
    //! the order acks and fails reach the acker, every message id gets exactly one outcome,
    //! acked only once every tuple of its tree was acked, failed exactly when one of its
    //! tuples failed.

    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    struct Sim {
        rng: SmallRng,
        acker: AckerState,
        books: Vec<EdgeBook>,
        outboxes: Vec<VecDeque<(AckerMsg, usize)>>,
        /// Tuples waiting to be processed: (edges, tuple id).
        live: Vec<(TupleEdges, usize)>,
        /// Held tuples per task: (edges, tuple id).
        held: Vec<Vec<(TupleEdges, usize)>>,
        /// Per root: tuple ids whose ack for that root has not reached the acker.
        outstanding: HashMap<u64, HashSet<usize>>,
        /// Roots with a failed tuple (fail message sent).
        failing: HashSet<u64>,
        outcomes: HashMap<u64, Outcome>,
        next_tuple: usize,
        fail_pct: u32,
        hold_pct: u32,
        fanout: u32,
    }

    use std::collections::VecDeque;

    impl Sim {
        fn deliver(&mut self, msg: AckerMsg, tuple: usize) {
            let root = msg.root();
            if let AckerMsg::Ack { .. } = msg {
                if let Some(set) = self.outstanding.get_mut(&root) {
                    set.remove(&tuple);
                }
            }
            if let Some(outcome) = self.acker.apply(msg) {
                match &outcome {
                    Outcome::Acked { root, .. } => {
                        assert!(
                            self.outstanding[root].is_empty(),
                            "tree {root:x} acked with tuples outstanding: {:?}",
                            self.outstanding[root]
                        );
                        assert!(
                            !self.failing.contains(root),
                            "tree with a failed tuple was acked"
                        );
                    }
                    Outcome::Failed { root, .. } => {
                        assert!(
                            self.failing.contains(root),
                            "tree failed without a failed tuple"
                        );
                    }
                }
                let root = match &outcome {
                    Outcome::Acked { root, .. } | Outcome::Failed { root, .. } => *root,
                };
                assert!(
                    self.outcomes.insert(root, outcome).is_none(),
                    "two outcomes for one tree"
                );
            }
        }

        fn new_tuple(&mut self, edges: TupleEdges) {
            let id = self.next_tuple;
            self.next_tuple += 1;
            for &(root, _) in &edges {
                self.outstanding.entry(root).or_default().insert(id);
            }
            self.live.push((edges, id));
        }

        fn send(&mut self, task: usize, msgs: Vec<AckerMsg>, tuple: usize) {
            for m in msgs {
                if matches!(m, AckerMsg::Fail { .. }) {
                    self.failing.insert(m.root());
                }
                self.outboxes[task].push_back((m, tuple));
            }
        }

        /// One bolt task processes a live tuple.
        fn process(&mut self) {
            let i = self.rng.gen_range(0..self.live.len());
            let (edges, id) = self.live.swap_remove(i);
            let task = self.rng.gen_range(0..self.books.len());
            self.books[task].begin(&edges);
            let children = self.rng.gen_range(0..=self.fanout);
            for _ in 0..children {
                // Sometimes also anchor to a tuple this task holds (multi-anchoring).
                let extra = if !self.held[task].is_empty() && self.rng.gen_bool(0.3) {
                    let j = self.rng.gen_range(0..self.held[task].len());
                    Some(self.held[task][j].0.clone())
                } else {
                    None
                };
                let copies = self.rng.gen_range(1..=2); // e.g. an `all` grouping
                for _ in 0..copies {
                    let child =
                        self.books[task].child_edges(std::iter::once(&edges).chain(extra.as_ref()));
                    self.new_tuple(child);
                }
            }
            let roll = self.rng.gen_range(0..100);
            if roll < self.fail_pct {
                self.books[task].take_current();
                let msgs = fail_msgs(&edges, &FailReason::Timeout).collect();
                self.send(task, msgs, id);
            } else if roll < self.fail_pct + self.hold_pct {
                self.books[task].hold_current(edges.clone());
                self.held[task].push((edges, id));
            } else {
                let (_, val) = self.books[task].take_current().expect("begun");
                let msgs = ack_msgs(&edges, val).collect();
                self.send(task, msgs, id);
            }
        }

        /// A task acks (or fails) one tuple it held.
        fn release(&mut self, task: usize) {
            let j = self.rng.gen_range(0..self.held[task].len());
            let (edges, id) = self.held[task].swap_remove(j);
            let (edges, val) = self.books[task].release(&edges).expect("held");
            let msgs = if self.rng.gen_range(0..100) < self.fail_pct {
                fail_msgs(&edges, &FailReason::Shutdown).collect()
            } else {
                ack_msgs(&edges, val).collect()
            };
            self.send(task, msgs, id);
        }

        fn pump_one(&mut self) -> bool {
            let nonempty: Vec<usize> = (0..self.outboxes.len())
                .filter(|&i| !self.outboxes[i].is_empty())
                .collect();
            if nonempty.is_empty() {
                return false;
            }
            let i = nonempty[self.rng.gen_range(0..nonempty.len())];
            let (msg, tuple) = self.outboxes[i].pop_front().expect("nonempty");
            self.deliver(msg, tuple);
            true
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn every_tree_gets_exactly_one_outcome(
            seed in any::<u64>(),
            messages in 1usize..25,
            tasks in 1usize..4,
            fail_pct in 0u32..25,
            hold_pct in 0u32..30,
            fanout in 0u32..4,
        ) {
            let mut sim = Sim {
                rng: SmallRng::seed_from_u64(seed),
                acker: AckerState::default(),
                books: (0..tasks).map(|t| EdgeBook::new(seed ^ ((t as u64 + 1) * 0x9e37_79b9))).collect(),
                outboxes: (0..tasks + 1).map(|_| VecDeque::new()).collect(),
                live: Vec::new(),
                held: (0..tasks).map(|_| Vec::new()).collect(),
                outstanding: HashMap::new(),
                failing: HashSet::new(),
                outcomes: HashMap::new(),
                next_tuple: 0,
                fail_pct,
                hold_pct,
                fanout,
            };
            let mut spout_book = EdgeBook::new(seed.rotate_left(17));
            let mut roots = Vec::new();
            let mut emitted = 0;
            // Random interleaving of spout emits, bolt work, releases and deliveries,
            // bounded so trees stay small.
            for _ in 0..5_000 {
                let step = sim.rng.gen_range(0..4);
                if step == 0 && emitted < messages {
                    emitted += 1;
                    let root = spout_book.new_id();
                    roots.push(root);
                    let copies = sim.rng.gen_range(1..=2);
                    let mut val = 0;
                    let mut copy_edges = Vec::new();
                    for _ in 0..copies {
                        let e = spout_book.new_id();
                        val ^= e;
                        let mut edges = TupleEdges::new();
                        edges.push((root, e));
                        copy_edges.push(edges);
                    }
                    // The Init reaches the acker before any tuple is enqueued.
                    sim.deliver(AckerMsg::Init { root, val, spout: 0 }, usize::MAX);
                    for edges in copy_edges {
                        sim.new_tuple(edges);
                    }
                } else if step == 1 && !sim.live.is_empty() && sim.next_tuple < 400 {
                    sim.process();
                } else if step == 2 {
                    let t = sim.rng.gen_range(0..tasks);
                    if !sim.held[t].is_empty() {
                        sim.release(t);
                    }
                } else {
                    sim.pump_one();
                }
            }
            // Quiescence: emit the rest, finish every tuple, release everything held,
            // deliver everything.
            while emitted < messages {
                emitted += 1;
                let root = spout_book.new_id();
                roots.push(root);
                let e = spout_book.new_id();
                sim.deliver(AckerMsg::Init { root, val: e, spout: 0 }, usize::MAX);
                let mut edges = TupleEdges::new();
                edges.push((root, e));
                sim.new_tuple(edges);
            }
            sim.fanout = 0;
            loop {
                if !sim.live.is_empty() {
                    sim.process();
                } else if let Some(t) = (0..tasks).find(|&t| !sim.held[t].is_empty()) {
                    sim.release(t);
                } else if !sim.pump_one() {
                    break;
                }
            }
            for root in &roots {
                let outcome = sim.outcomes.get(root);
                prop_assert!(outcome.is_some(), "tree {:x} has no outcome", root);
                let failed = matches!(outcome, Some(Outcome::Failed { .. }));
                prop_assert_eq!(failed, sim.failing.contains(root));
            }
            prop_assert_eq!(sim.outcomes.len(), roots.len());
            prop_assert_eq!(sim.acker.len(), 0, "the acker forgot every decided tree");
        }
    }

    #[test]
    fn tree_memory_is_small_and_constant() {
        let mut acker = AckerState::default();
        for i in 1..=100_000u64 {
            acker.apply(AckerMsg::Init {
                root: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                val: i,
                spout: 0,
            });
        }
        let bytes = acker.bytes_per_tree();
        // 16 bytes of state + 8 of key + 1 control byte per slot, at hashbrown's load.
        assert!((25.0..60.0).contains(&bytes), "{bytes} bytes per tree");
    }
}
