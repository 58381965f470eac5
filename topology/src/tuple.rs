//! [`Tuple`], [`Fields`] and the ids that name where a tuple came from.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, OnceLock};

use smallvec::SmallVec;

use crate::value::Value;

/// The id of the stream every component emits to unless it names another.
pub const DEFAULT_STREAM: &str = "default";
/// The component id tick tuples come from.
pub const SYSTEM_COMPONENT: &str = "__system";
/// The stream id of tick tuples.
pub const TICK_STREAM: &str = "__tick";

/// The values of one tuple, inline for up to two fields (the hot streams of the alert
/// pipeline and of most topologies; more fields take one allocation). Kept small because
/// a tuple is moved several times per hop: a tuple of up to 128 bytes is moved with a few
/// vector instructions instead of a `memcpy` call.
pub type Values = SmallVec<[Value; 2]>;

/// Builds [`Values`] from expressions convertible into [`Value`].
///
/// ```
/// use squall_topology::{values, Value};
/// let v = values!["word", 3];
/// assert_eq!(v[1], Value::Int(3));
/// ```
#[macro_export]
macro_rules! values {
    () => { $crate::Values::new() };
    ($($v:expr),+ $(,)?) => {{
        let mut v = $crate::Values::new();
        $( v.push($crate::Value::from($v)); )+
        v
    }};
}

/// The id of one task (one running instance of a component), unique in a topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An id a spout gives a tuple it wants tracked; handed back to its `ack` or `fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// The ordered field names of a stream. Copying is free (the names are interned).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fields(&'static [&'static str]);

impl Fields {
    /// Field names in order.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<S> = names.into_iter().collect();
        Fields(intern_fields(&names))
    }

    /// No fields.
    pub fn empty() -> Self {
        Fields(&[])
    }

    /// The position of `name`, if declared.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|f| *f == name)
    }

    /// Whether `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn as_slice(&self) -> &'static [&'static str] {
        self.0
    }

    /// Iterates over the names.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> {
        self.0.iter().copied()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0).finish()
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

/// Where tuples of one stream come from: component, stream and its declared fields.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceMeta {
    /// The emitting component's id.
    pub component: &'static str,
    /// The stream id.
    pub stream: &'static str,
    /// The stream's declared fields.
    pub fields: Fields,
}

impl SourceMeta {
    /// The shared description of `stream` of `component` with `fields`.
    pub fn get(component: &str, stream: &str, fields: Fields) -> &'static SourceMeta {
        intern_source(component, stream, fields)
    }

    /// The source of tick tuples.
    pub fn tick() -> &'static SourceMeta {
        static TICK: std::sync::OnceLock<&'static SourceMeta> = std::sync::OnceLock::new();
        TICK.get_or_init(|| intern_source(SYSTEM_COMPONENT, TICK_STREAM, Fields::empty()))
    }
}

/// Tracking data of a tuple under guaranteed processing: for each spout tuple (root) this
/// tuple descends from, the random 64-bit id of this tuple's edge in that root's tree.
pub type TupleEdges = SmallVec<[(u64, u64); 1]>;

/// A tuple: the values of one emission plus where it came from.
#[derive(Clone)]
pub struct Tuple {
    values: Values,
    source: &'static SourceMeta,
    source_task: TaskId,
    edges: TupleEdges,
}

impl Tuple {
    /// A tuple with `values` on `source` emitted by task `source_task`.
    pub fn new(source: &'static SourceMeta, source_task: TaskId, values: Values) -> Self {
        Tuple {
            values,
            source,
            source_task,
            edges: TupleEdges::new(),
        }
    }

    /// A tick tuple (stream `__tick` of component `__system`, no values).
    pub fn tick() -> Self {
        Tuple::new(SourceMeta::tick(), TaskId(u32::MAX), Values::new())
    }

    /// A tuple with its tracking edges, built in place (the runtime's router).
    #[doc(hidden)]
    #[inline]
    pub fn from_parts(
        source: &'static SourceMeta,
        source_task: TaskId,
        values: Values,
        edges: TupleEdges,
    ) -> Self {
        Tuple {
            values,
            source,
            source_task,
            edges,
        }
    }

    /// Sets the tuple's tracking edges (used by the runtime's acker).
    #[doc(hidden)]
    pub fn with_edges(mut self, edges: TupleEdges) -> Self {
        self.edges = edges;
        self
    }

    /// The tuple's tracking edges (used by the runtime's acker).
    #[doc(hidden)]
    pub fn edges(&self) -> &TupleEdges {
        &self.edges
    }

    /// All values in declared field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out of the tuple.
    pub fn into_values(self) -> Values {
        self.values
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value of field `name`.
    pub fn get_by_field(&self, name: &str) -> Option<&Value> {
        self.source
            .fields
            .index_of(name)
            .and_then(|i| self.values.get(i))
    }

    /// The string value of field `name`, if the field exists and holds a string.
    pub fn str_by_field(&self, name: &str) -> Option<&str> {
        self.get_by_field(name).and_then(Value::as_str)
    }

    /// The declared fields of the tuple's stream.
    pub fn fields(&self) -> Fields {
        self.source.fields
    }

    /// The id of the stream the tuple was emitted on.
    pub fn stream(&self) -> &'static str {
        self.source.stream
    }

    /// The id of the component that emitted the tuple.
    pub fn source_component(&self) -> &'static str {
        self.source.component
    }

    /// The task that emitted the tuple.
    pub fn source_task(&self) -> TaskId {
        self.source_task
    }

    /// The stream description shared by all tuples of this stream.
    pub fn source(&self) -> &'static SourceMeta {
        self.source
    }

    /// Whether this is a tick tuple.
    pub fn is_tick(&self) -> bool {
        // Sources are interned, so the tick source is one address.
        std::ptr::eq(self.source, SourceMeta::tick())
    }

    /// The values as a JSON object (field name -> value).
    pub fn to_json_object(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        for (i, v) in self.values.iter().enumerate() {
            let name = self
                .source
                .fields
                .as_slice()
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("_{i}"));
            map.insert(name, v.to_json());
        }
        map
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tuple({}:{}@{} {:?})",
            self.source.component, self.source.stream, self.source_task, self.values
        )
    }
}

// ---------------------------------------------------------------------------------------
// The interner.
//
// A process-wide interner for component ids, stream ids and field lists.
//
// Names are interned once when a topology is validated, so tuples carry `&'static`
// references instead of reference-counted strings: moving a tuple between threads then
// touches no shared counter. The interner only grows with the number of *distinct* names
// a process ever uses, which is bounded by its topologies.

#[derive(Default)]
struct Interner {
    strings: HashSet<&'static str>,
    fields: HashMap<Vec<&'static str>, &'static [&'static str]>,
    sources: HashMap<(&'static str, &'static str, usize), &'static SourceMeta>,
}

fn interner() -> &'static Mutex<Interner> {
    static INTERNER: OnceLock<Mutex<Interner>> = OnceLock::new();
    INTERNER.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Interner> {
    // The interner holds no invariant a panic could break, so a poisoned lock is usable.
    interner().lock().unwrap_or_else(|e| e.into_inner())
}

fn intern_locked(i: &mut Interner, s: &str) -> &'static str {
    if let Some(found) = i.strings.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    i.strings.insert(leaked);
    leaked
}

/// Returns the interned, `'static` copy of `s`.
pub fn intern(s: &str) -> &'static str {
    intern_locked(&mut lock(), s)
}

pub(crate) fn intern_fields<S: AsRef<str>>(names: &[S]) -> &'static [&'static str] {
    let mut i = lock();
    let key: Vec<&'static str> = names
        .iter()
        .map(|n| intern_locked(&mut i, n.as_ref()))
        .collect();
    if let Some(found) = i.fields.get(&key) {
        return found;
    }
    let leaked: &'static [&'static str] = Box::leak(key.clone().into_boxed_slice());
    i.fields.insert(key, leaked);
    leaked
}

pub(crate) fn intern_source(component: &str, stream: &str, fields: Fields) -> &'static SourceMeta {
    let mut i = lock();
    let component = intern_locked(&mut i, component);
    let stream = intern_locked(&mut i, stream);
    let key = (component, stream, fields.as_slice().as_ptr() as usize);
    if let Some(found) = i.sources.get(&key) {
        return found;
    }
    let leaked: &'static SourceMeta = Box::leak(Box::new(SourceMeta {
        component,
        stream,
        fields,
    }));
    i.sources.insert(key, leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_interned_and_indexed() {
        let a = Fields::new(["word", "count"]);
        let b = Fields::new(vec!["word".to_string(), "count".to_string()]);
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_slice(), b.as_slice()));
        assert_eq!(a.index_of("count"), Some(1));
        assert_eq!(a.index_of("nope"), None);
    }

    #[test]
    fn tuple_field_access() {
        let src = SourceMeta::get("split", DEFAULT_STREAM, Fields::new(["word", "n"]));
        let t = Tuple::new(src, TaskId(3), values!["hello", 2]);
        assert_eq!(t.str_by_field("word"), Some("hello"));
        assert_eq!(t.get_by_field("n"), Some(&Value::Int(2)));
        assert_eq!(t.source_component(), "split");
        assert!(!t.is_tick());
        assert!(Tuple::tick().is_tick());
        assert_eq!(
            serde_json::Value::Object(t.to_json_object()),
            serde_json::json!({"word": "hello", "n": 2})
        );
    }
}
