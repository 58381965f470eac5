//! Groupings: how a stream's tuples are spread over the tasks of a subscribing bolt.
//!
//! Routing is a pure function of the grouping, the tuple's values and the small state a
//! producer task keeps per subscription ([`GroupingRouter`]): a round-robin position for
//! shuffle, per-task counts for partial-key. Fields hashing is stable across processes and
//! runs (xxHash64 with a fixed seed over [`Value::stable_hash`]), so the same key reaches
//! the same task index in every process of a consumer group.

use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

use smallvec::SmallVec;
use twox_hash::XxHash64;

use crate::tuple::Fields;
use crate::value::Value;

/// A user-defined grouping (Storm's `CustomStreamGrouping`).
pub trait CustomGrouping: Send + Sync + 'static {
    /// Pushes the indices (`0..task_count`) of the tasks that receive a tuple with `values`.
    fn choose_tasks(&self, values: &[Value], task_count: usize, out: &mut SmallVec<[usize; 4]>);
}

/// How tuples of one subscription are distributed over the subscriber's tasks.
#[derive(Clone)]
pub enum Grouping {
    /// Round-robin over the tasks: an even spread.
    Shuffle,
    /// Equal values of the named fields always go to the same task.
    Fields(Vec<String>),
    /// Every task receives every tuple.
    All,
    /// Every tuple goes to the subscriber's first task.
    Global,
    /// The emitter chooses the task with `emit_direct` (direct streams only).
    Direct,
    /// Prefer tasks in the same worker process, else shuffle. All tasks of a squall
    /// process are local to each other, so within one process this is shuffle.
    LocalOrShuffle,
    /// No preference (Storm: currently shuffle).
    None,
    /// Each key goes to the less loaded of two candidate tasks (two-choice load
    /// balancing): a hot key is spread over at most two tasks.
    PartialKey(Vec<String>),
    /// A user-defined grouping, with the name it was registered or built under.
    Custom(String, Arc<dyn CustomGrouping>),
}

impl Grouping {
    /// The grouping's name as written in topology files.
    pub fn name(&self) -> &'static str {
        match self {
            Grouping::Shuffle => "shuffle",
            Grouping::Fields(_) => "fields",
            Grouping::All => "all",
            Grouping::Global => "global",
            Grouping::Direct => "direct",
            Grouping::LocalOrShuffle => "local_or_shuffle",
            Grouping::None => "none",
            Grouping::PartialKey(_) => "partial_key",
            Grouping::Custom(..) => "custom",
        }
    }

    /// The key fields of fields and partial-key groupings.
    pub fn key_fields(&self) -> Option<&[String]> {
        match self {
            Grouping::Fields(f) | Grouping::PartialKey(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Debug for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grouping::Fields(k) | Grouping::PartialKey(k) => {
                write!(f, "{}({})", self.name(), k.join(", "))
            }
            Grouping::Custom(name, _) => write!(f, "custom({name})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The task indices a tuple is routed to.
pub type Targets = SmallVec<[usize; 4]>;

enum Kind {
    Shuffle {
        next: usize,
    },
    Fields {
        keys: SmallVec<[usize; 2]>,
    },
    All,
    Global,
    Direct,
    PartialKey {
        keys: SmallVec<[usize; 2]>,
        load: Vec<u64>,
    },
    Custom(Arc<dyn CustomGrouping>),
}

/// The routing state one producer task keeps for one subscription.
pub struct GroupingRouter {
    kind: Kind,
    tasks: usize,
}

impl std::fmt::Debug for GroupingRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupingRouter").finish_non_exhaustive()
    }
}

/// Hashes the key values at `keys` with `seed`.
fn key_hash(values: &[Value], keys: &[usize], seed: u64) -> u64 {
    // The common key, one short string, hashed in one shot from a stack buffer holding
    // exactly the bytes `stable_hash` feeds a streaming hasher (so the same hash).
    if let [k] = keys {
        if let Some(Value::Str(s)) = values.get(*k) {
            const MAX: usize = 64;
            if s.len() <= MAX {
                let mut buf = [0u8; 9 + MAX];
                buf[0] = 4;
                buf[1..9].copy_from_slice(&(s.len() as u64).to_le_bytes());
                buf[9..9 + s.len()].copy_from_slice(s.as_bytes());
                return XxHash64::oneshot(seed, &buf[..9 + s.len()]);
            }
        }
    }
    let mut h = XxHash64::with_seed(seed);
    for &k in keys {
        match values.get(k) {
            Some(v) => v.stable_hash(&mut h),
            None => h.write_u8(0xff),
        }
    }
    h.finish()
}

/// The task index (`0..task_count`) a fields grouping sends a tuple with these key values
/// to: lets a task tell which keys are its own (e.g. to reload their state after a restart).
pub fn fields_task(key: &[Value], task_count: usize) -> usize {
    let keys: SmallVec<[usize; 2]> = (0..key.len()).collect();
    (key_hash(key, &keys, 0) % task_count.max(1) as u64) as usize
}

impl GroupingRouter {
    /// A router for `grouping` over `tasks` subscriber tasks, reading keys from tuples with
    /// `fields`. `producer_index` staggers the round-robin start of different producers.
    ///
    /// Key fields must be declared in `fields` (the validator guarantees it); an unknown
    /// one hashes as a missing value.
    pub fn new(grouping: &Grouping, fields: Fields, tasks: usize, producer_index: usize) -> Self {
        assert!(tasks > 0, "a subscription needs at least one task");
        let key_indices = |names: &[String]| -> SmallVec<[usize; 2]> {
            names
                .iter()
                .map(|n| fields.index_of(n).unwrap_or(usize::MAX))
                .collect()
        };
        let kind = match grouping {
            Grouping::Shuffle | Grouping::LocalOrShuffle | Grouping::None => Kind::Shuffle {
                next: producer_index % tasks,
            },
            Grouping::Fields(names) => Kind::Fields {
                keys: key_indices(names),
            },
            Grouping::All => Kind::All,
            Grouping::Global => Kind::Global,
            Grouping::Direct => Kind::Direct,
            Grouping::PartialKey(names) => Kind::PartialKey {
                keys: key_indices(names),
                load: vec![0; tasks],
            },
            Grouping::Custom(_, c) => Kind::Custom(c.clone()),
        };
        GroupingRouter { kind, tasks }
    }

    /// Number of subscriber tasks.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// Whether this is a direct subscription (targets come from `emit_direct`).
    pub fn is_direct(&self) -> bool {
        matches!(self.kind, Kind::Direct)
    }

    /// Pushes the target task indices for a tuple with `values` onto `out`. Direct
    /// subscriptions push nothing here (the runtime resolves the chosen task).
    pub fn route(&mut self, values: &[Value], out: &mut Targets) {
        match &mut self.kind {
            Kind::Shuffle { next } => {
                out.push(*next);
                *next += 1;
                if *next == self.tasks {
                    *next = 0;
                }
            }
            Kind::Fields { keys } => {
                out.push((key_hash(values, keys, 0) % self.tasks as u64) as usize);
            }
            Kind::All => out.extend(0..self.tasks),
            Kind::Global => out.push(0),
            Kind::Direct => {}
            Kind::PartialKey { keys, load } => {
                let a = (key_hash(values, keys, 0x5eed_0001) % self.tasks as u64) as usize;
                let b = (key_hash(values, keys, 0x5eed_0002) % self.tasks as u64) as usize;
                let chosen = if load[b] < load[a] { b } else { a };
                load[chosen] += 1;
                out.push(chosen);
            }
            Kind::Custom(c) => {
                let start = out.len();
                c.choose_tasks(values, self.tasks, out);
                // Out-of-range choices are dropped rather than panicking the producer.
                let mut i = start;
                while i < out.len() {
                    if out[i] >= self.tasks {
                        out.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn fields() -> Fields {
        Fields::new(["word", "n"])
    }

    #[test]
    fn one_shot_string_key_hash_equals_the_streaming_hash() {
        for len in [0usize, 1, 5, 63, 64, 65, 200] {
            let v = [Value::from("x".repeat(len))];
            let mut h = XxHash64::with_seed(7);
            v[0].stable_hash(&mut h);
            assert_eq!(key_hash(&v, &[0], 7), h.finish(), "length {len}");
        }
    }

    #[test]
    fn tuples_and_emissions_move_without_a_memcpy_call() {
        // Moved several times per hop: at most 128 bytes keeps each move a few vector
        // instructions (the perf profile of the word count showed memcpy at 21%).
        assert!(std::mem::size_of::<crate::Tuple>() <= 128);
        assert!(std::mem::size_of::<crate::Emission>() <= 128);
    }

    fn route(r: &mut GroupingRouter, v: &[Value]) -> Targets {
        let mut t = Targets::new();
        r.route(v, &mut t);
        t
    }

    #[test]
    fn shuffle_spreads_evenly() {
        let mut r = GroupingRouter::new(&Grouping::Shuffle, fields(), 4, 0);
        let mut counts = [0; 4];
        for i in 0..400 {
            let t = route(&mut r, &values!["w", i]);
            assert_eq!(t.len(), 1);
            counts[t[0]] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }

    #[test]
    fn fields_task_agrees_with_the_fields_router() {
        let mut r = GroupingRouter::new(&Grouping::Fields(vec!["n".into()]), fields(), 3, 0);
        for i in 0..100i64 {
            let t = route(&mut r, &values!["w", i]);
            assert_eq!(t.as_slice(), &[fields_task(&values![i], 3)]);
        }
    }

    #[test]
    fn all_reaches_every_task() {
        let mut r = GroupingRouter::new(&Grouping::All, fields(), 3, 0);
        assert_eq!(route(&mut r, &values!["w", 1]).as_slice(), &[0, 1, 2]);
    }

    #[test]
    fn global_reaches_first_task_only() {
        let mut r = GroupingRouter::new(&Grouping::Global, fields(), 5, 2);
        for i in 0..50 {
            assert_eq!(route(&mut r, &values![format!("w{i}"), i]).as_slice(), &[0]);
        }
    }

    #[test]
    fn custom_grouping_out_of_range_choices_are_dropped() {
        struct Odd;
        impl CustomGrouping for Odd {
            fn choose_tasks(&self, values: &[Value], n: usize, out: &mut SmallVec<[usize; 4]>) {
                let i = values[1].as_int().unwrap() as usize;
                out.push(i % n);
                out.push(n + 7);
            }
        }
        let mut r = GroupingRouter::new(
            &Grouping::Custom("odd".into(), Arc::new(Odd)),
            fields(),
            3,
            0,
        );
        assert_eq!(route(&mut r, &values!["w", 4]).as_slice(), &[1]);
    }

    #[test]
    fn fields_keys_spread_over_tasks() {
        let mut r = GroupingRouter::new(&Grouping::Fields(vec!["word".into()]), fields(), 4, 0);
        let mut per_task = [0usize; 4];
        for i in 0..4000 {
            per_task[route(&mut r, &values![format!("key-{i}"), 0])[0]] += 1;
        }
        for c in per_task {
            assert!((800..1200).contains(&c), "uneven spread {per_task:?}");
        }
    }

    proptest! {
        #[test]
        fn fields_equal_keys_same_task(keys in proptest::collection::vec("[a-z]{1,6}", 1..200), tasks in 1usize..9, producer in 0usize..4) {
            // Two producers (different round-robin offsets) must agree on every key.
            let g = Grouping::Fields(vec!["word".into()]);
            let mut a = GroupingRouter::new(&g, fields(), tasks, 0);
            let mut b = GroupingRouter::new(&g, fields(), tasks, producer);
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                let ta = route(&mut a, &values![k.as_str(), i]);
                let tb = route(&mut b, &values![k.as_str(), i * 7]);
                prop_assert_eq!(ta.len(), 1);
                prop_assert_eq!(&ta, &tb);
                prop_assert!(ta[0] < tasks);
                if let Some(prev) = seen.insert(k.clone(), ta[0]) {
                    prop_assert_eq!(prev, ta[0]);
                }
            }
        }

        #[test]
        fn partial_key_uses_at_most_two_tasks_per_key(keys in proptest::collection::vec(0u8..20, 1..500), tasks in 1usize..8) {
            let mut r = GroupingRouter::new(&Grouping::PartialKey(vec!["word".into()]), fields(), tasks, 0);
            let mut per_key: HashMap<u8, HashSet<usize>> = HashMap::new();
            for k in keys {
                let t = route(&mut r, &values![format!("k{k}"), 1]);
                prop_assert_eq!(t.len(), 1);
                per_key.entry(k).or_default().insert(t[0]);
            }
            for (_, set) in per_key {
                prop_assert!(set.len() <= 2);
            }
        }
    }

    #[test]
    fn partial_key_splits_a_hot_key() {
        // One hot key: two-choice spreads it over its two candidates.
        let mut r = GroupingRouter::new(&Grouping::PartialKey(vec!["word".into()]), fields(), 8, 0);
        let mut used = HashSet::new();
        for _ in 0..100 {
            used.insert(route(&mut r, &values!["hot", 1])[0]);
        }
        assert!(used.len() <= 2);
        // With 8 tasks the two hash choices may coincide for some keys, but not for all.
        let mut split_keys = 0;
        for k in 0..50 {
            let mut r =
                GroupingRouter::new(&Grouping::PartialKey(vec!["word".into()]), fields(), 8, 0);
            let set: HashSet<usize> = (0..10)
                .map(|_| route(&mut r, &values![format!("k{k}"), 1])[0])
                .collect();
            if set.len() == 2 {
                split_keys += 1;
            }
        }
        assert!(
            split_keys > 30,
            "hot keys split over two tasks: {split_keys}/50"
        );
    }
}
