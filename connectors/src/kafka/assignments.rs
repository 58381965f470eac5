//! Which partitions this process's consumers hold, per consumer group: the spout's
//! pollers record every assignment and revocation here, so components downstream (the
//! alert state, which moves with its partitions) can follow them without a Kafka client
//! of their own.
//!
//! Invariants: each assignment of a partition gets a generation no other assignment in
//! this process had, so "assigned, revoked, assigned again" is never mistaken for "still
//! assigned"; [`Assignments::version`] changes with every change, so followers can check
//! cheaply whether anything moved.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// One partition held now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Unique to this assignment of it in this process.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    held: BTreeMap<(String, i32), u64>,
    version: u64,
}

/// The partitions of one consumer group held by this process (see the module docs).
#[derive(Debug, Default)]
pub struct Assignments {
    inner: Mutex<Inner>,
}

/// A process-wide counter: generations are unique across groups too.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Assignments {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `partition` of `topic` was assigned; returns its generation.
    pub fn assign(&self, topic: &str, partition: i32) -> u64 {
        let generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut inner = self.lock();
        inner
            .held
            .insert((topic.to_string(), partition), generation);
        inner.version += 1;
        generation
    }

    /// Records that `partition` of `topic` was revoked (or lost).
    pub fn revoke(&self, topic: &str, partition: i32) {
        let mut inner = self.lock();
        if inner.held.remove(&(topic.to_string(), partition)).is_some() {
            inner.version += 1;
        }
    }

    /// A number that changes whenever an assignment does.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The partitions held now, by topic and partition, and the version they are of.
    pub fn held(&self) -> (u64, Vec<Held>) {
        let inner = self.lock();
        let held = inner
            .held
            .iter()
            .map(|((topic, partition), generation)| Held {
                topic: topic.clone(),
                partition: *partition,
                generation: *generation,
            })
            .collect();
        (inner.version, held)
    }
}

/// The assignments of consumer group `group` in this process (one per group, shared).
pub fn assignments(group: &str) -> Arc<Assignments> {
    static GROUPS: OnceLock<Mutex<HashMap<String, Arc<Assignments>>>> = OnceLock::new();
    GROUPS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(group.to_string())
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_assignment_has_its_own_generation_and_every_change_a_version() {
        let a = assignments("assignments-test-group");
        assert!(Arc::ptr_eq(&a, &assignments("assignments-test-group")));
        let v0 = a.version();
        let g1 = a.assign("payloads", 0);
        a.assign("payloads", 1);
        a.revoke("payloads", 0);
        a.revoke("payloads", 0); // twice: no change
        assert_eq!(a.version(), v0 + 3);
        let g2 = a.assign("payloads", 0);
        assert_ne!(g1, g2, "assigned again is a new assignment");
        let (_, held) = a.held();
        assert_eq!(held.iter().map(|h| h.partition).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(held[0].generation, g2);
        assert!(assignments("another-group").held().1.is_empty());
    }
}
