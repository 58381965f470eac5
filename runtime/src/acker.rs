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

/// One tracked tree: its running XOR and the spout task that owns it (16 bytes).
#[derive(Clone, Copy, Debug)]
struct Tree {
    val: u64,
    spout: u32,
}

/// The state of one acker: the trees in flight whose roots hash to it.
#[derive(Debug, Default)]
pub(crate) struct AckerState {
    trees: HashMap<u64, Tree>,
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
    held: HashMap<TupleKey, (TupleEdges, u64)>,
}

impl EdgeBook {
    pub(crate) fn new(seed: u64) -> Self {
        EdgeBook {
            rng: SmallRng::seed_from_u64(seed),
            current: None,
            held: HashMap::new(),
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

    /// Number of held tuples.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
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
