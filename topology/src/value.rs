//! [`Value`]: one field of a tuple.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// One field of a [`Tuple`](crate::Tuple).
///
/// Cloning is cheap: short strings are copied inline ([`Str`]), longer strings and byte
/// strings are reference counted. `Any` carries a Rust
/// value between Rust bolts without serialising it (it cannot leave the process).
#[derive(Clone)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(Str),
    /// A byte string.
    Bytes(Arc<[u8]>),
    /// Any Rust value, shared without copying.
    Any(Arc<dyn Any + Send + Sync>),
}

impl Value {
    /// Wraps a Rust value for zero-copy passing between Rust bolts.
    pub fn any<T: Any + Send + Sync>(value: T) -> Self {
        Value::Any(Arc::new(value))
    }

    /// The string, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, if this is a `Float` or an `Int`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, if this is `Bytes` (or the UTF-8 bytes of a `Str`).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The Rust value inside an `Any`, if it has type `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            Value::Any(a) => a.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Any(_) => "any",
        }
    }

    /// Feeds a representation of this value to `hasher` that is stable across processes,
    /// platforms and releases (the fields grouping depends on it). `Any` values hash by
    /// their variant only.
    pub fn stable_hash<H: Hasher>(&self, hasher: &mut H) {
        match self {
            Value::Null => hasher.write_u8(0),
            Value::Bool(b) => hasher.write(&[1, *b as u8]),
            Value::Int(i) => {
                hasher.write_u8(2);
                hasher.write(&i.to_le_bytes());
            }
            Value::Float(f) => {
                hasher.write_u8(3);
                hasher.write(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                hasher.write_u8(4);
                hasher.write(&(s.len() as u64).to_le_bytes());
                hasher.write(s.as_bytes());
            }
            Value::Bytes(b) => {
                hasher.write_u8(5);
                hasher.write(&(b.len() as u64).to_le_bytes());
                hasher.write(b);
            }
            Value::Any(_) => hasher.write_u8(6),
        }
    }

    /// Converts to JSON. Bytes become an array of numbers; `Any` holding a
    /// `serde_json::Value` (e.g. the Kafka spout's `value = "json"`) becomes that value,
    /// any other `Any` becomes `"<any>"`, since it has no portable form.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
            Value::Any(a) => match a.downcast_ref::<serde_json::Value>() {
                Some(json) => json.clone(),
                None => serde_json::Value::String("<any>".into()),
            },
        }
    }

    /// Converts from JSON: numbers, strings, booleans and null map to their variants;
    /// arrays and objects are kept as their JSON text in a `Str`.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.as_str().into()),
            other => Value::Str(other.to_string().into()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Any(_) => f.write_str("<any>"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// Equality is structural; floats compare by bit pattern (so `NaN == NaN` and values can
/// be map keys) and `Any` values by identity.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Any(a), Value::Any(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Any(a) => {
                state.write_u8(6);
                (Arc::as_ptr(a) as *const () as usize).hash(state);
            }
            other => other.stable_hash(state),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}
impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Self {
        Value::Str(s.into())
    }
}
impl From<Str> for Value {
    fn from(s: Str) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i.into())
    }
}
impl From<u64> for Value {
    /// Values above `i64::MAX` saturate.
    fn from(i: u64) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    /// Values above `i64::MAX` saturate.
    fn from(i: usize) -> Self {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b.into())
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.into())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

/// The string of a [`Value::Str`] ([`smol_str::SmolStr`]): up to 23 bytes are kept
/// inline (copied with the tuple: no allocation, no shared reference count), longer
/// strings are shared (`Arc<str>`), and `Str::new_static` wraps an interned `&'static str`
/// without either.
///
/// Equality, ordering and hashing are by content. Words, device ids and metric names are
/// short, so a topology moving them touches no counter another thread also writes (the
/// word count's profile showed the shared reference counts of its vocabulary bouncing
/// between cores).
pub type Str = smol_str::SmolStr;

#[cfg(test)]
mod tests {
    use super::*;
    use twox_hash::XxHash64;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let short = Str::from("word4480");
        assert!(!short.is_heap_allocated());
        assert_eq!(&*short, "word4480");
        let edge = Str::from("x".repeat(23));
        assert!(!edge.is_heap_allocated());
        let long = Str::from("y".repeat(24));
        assert!(long.is_heap_allocated());
        assert_eq!(long.len(), 24);
        // An `Arc<str>` that fits is copied inline: equal strings, one representation.
        let from_arc = Str::from(Arc::<str>::from("word4480"));
        assert!(!from_arc.is_heap_allocated());
        assert_eq!(from_arc, short);
        assert_eq!(Str::from("é✓"), Str::from(String::from("é✓")));
        assert_eq!(Value::from("a"), Value::from(Arc::<str>::from("a")));
    }

    #[test]
    fn values_stay_small() {
        assert!(std::mem::size_of::<Value>() <= 32);
    }

    fn h(v: &Value) -> u64 {
        let mut hasher = XxHash64::with_seed(0);
        v.stable_hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn stable_hash_is_fixed_across_releases() {
        // Pinned values: changing them would re-route every fields-grouped key.
        assert_eq!(
            h(&Value::from("word")),
            h(&Value::from(String::from("word")))
        );
        assert_ne!(h(&Value::from("1")), h(&Value::Int(1)));
        assert_ne!(h(&Value::Int(1)), h(&Value::Float(1.0)));
        assert_eq!(h(&Value::from("squall")), 4736545329655957275);
        assert_eq!(h(&Value::Int(42)), 4956066600274079096);
    }

    #[test]
    fn json_round_trip_of_scalars() {
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Float(1.5),
            Value::from("x"),
        ] {
            assert_eq!(Value::from_json(&v.to_json()), v);
        }
    }

    #[test]
    fn floats_compare_by_bits() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
    }
}
