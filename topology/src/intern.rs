//! A process-wide interner for component ids, stream ids and field lists.
//!
//! Names are interned once when a topology is validated, so tuples carry `&'static`
//! references instead of reference-counted strings: moving a tuple between threads then
//! touches no shared counter. The interner only grows with the number of *distinct* names
//! a process ever uses, which is bounded by its topologies.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use crate::tuple::{Fields, SourceMeta};

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
