//! Which partitions of a topic this process owns for the state kept by partition, shared
//! by the tasks of a process: the payloads topic's for the alert state (`threshold`), the
//! notifications topic's for the notification groups (`policy`).
//!
//! The kafka spout records the partitions its consumers are assigned
//! ([`squall_connectors::kafka::assignments`]); each new assignment of a partition is
//! claimed in the database once for the whole process
//! ([`AlertStateStore::claim_partition`], [`PolicyStore::claim_group_partition`]: a new
//! epoch), and every task works on the partition's state under that epoch. Claims are made in the tasks' own threads (the
//! engines' database threads), never on the poller's.
//!
//! Invariant: an assignment (a generation) is claimed at most once per process, so the
//! tasks of one process never fence each other; a later assignment of the same partition
//! is claimed anew, which fences whatever still writes under the old epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use squall_alerting::store::{AlertStateStore, PolicyStore, StoreError};
use squall_connectors::kafka::assignments::{assignments, Assignments};

/// A partition owned now: its assignment's generation and the epoch claimed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owned {
    /// The partition.
    pub partition: i32,
    /// The assignment (unique in this process).
    pub generation: u64,
    /// The epoch claimed in the database.
    pub epoch: i64,
}

/// Claims a partition in the database: its new epoch.
pub type Claimer = Box<dyn Fn(i32) -> Result<i64, StoreError> + Send + Sync>;

/// The ownership of one consumer group's partitions in this process (see the module
/// docs).
pub struct Ownership {
    assignments: Arc<Assignments>,
    claim: Claimer,
    /// Partition -> (generation, epoch) of its latest claim.
    claims: Mutex<HashMap<i32, (u64, i64)>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership").finish_non_exhaustive()
    }
}

impl Ownership {
    /// The alert-state ownership of consumer group `group` on database `db_url` in this
    /// process (one, shared by every caller; `store` claims).
    pub fn of(db_url: &str, group: &str, store: Arc<dyn AlertStateStore>) -> Arc<Ownership> {
        Self::with(db_url, group, Box::new(move |p| store.claim_partition(p)))
    }

    /// The notification-group ownership of consumer group `group` on `db_url` (`store`
    /// claims).
    pub fn of_groups(db_url: &str, group: &str, store: Arc<dyn PolicyStore>) -> Arc<Ownership> {
        Self::with(
            db_url,
            group,
            Box::new(move |p| store.claim_group_partition(p)),
        )
    }

    /// The ownership of consumer group `group` on `db_url` in this process, claiming with
    /// `claim` when there is none yet.
    pub fn with(db_url: &str, group: &str, claim: Claimer) -> Arc<Ownership> {
        type Registry = Mutex<HashMap<(String, String), Weak<Ownership>>>;
        static ALL: OnceLock<Registry> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (db_url.to_string(), group.to_string());
        if let Some(o) = all.get(&key).and_then(Weak::upgrade) {
            return o;
        }
        let o = Arc::new(Ownership {
            assignments: assignments(group),
            claim,
            claims: Mutex::new(HashMap::new()),
        });
        all.insert(key, Arc::downgrade(&o));
        o
    }

    /// A number that changes whenever the assignment does.
    pub fn version(&self) -> u64 {
        self.assignments.version()
    }

    /// The partitions assigned now, each claimed (once per assignment) in the database.
    /// Blocks on the database: call it on a database thread.
    pub fn current(&self) -> Result<(u64, Vec<Owned>), StoreError> {
        let (version, held) = self.assignments.held();
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.retain(|p, (g, _)| held.iter().any(|h| h.partition == *p && h.generation == *g));
        let mut out = Vec::with_capacity(held.len());
        for h in held {
            let epoch = match claims.get(&h.partition) {
                Some((g, e)) if *g == h.generation => *e,
                _ => {
                    let e = (self.claim)(h.partition)?;
                    tracing::info!(partition = h.partition, epoch = e, "partition claimed");
                    claims.insert(h.partition, (h.generation, e));
                    e
                }
            };
            out.push(Owned {
                partition: h.partition,
                generation: h.generation,
                epoch,
            });
        }
        Ok((version, out))
    }
}

/// This process as claims in the database name it: `HOST:PID:START` (the start time in
/// nanoseconds tells a restarted process with a reused pid from its predecessor).
pub fn process_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{host}:{}:{start}", std::process::id())
    })
}
