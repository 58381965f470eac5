//! The `squall` package: the command-line binary, its component registry, examples,
//! benchmarks and end-to-end tests. The libraries are `squall-topology` (the model),
//! `squall-runtime` (running it), `squall-spouts` and `squall-bolts` (components).
#![warn(missing_docs)]

pub mod admin;
pub mod bench;
pub mod fleet;
pub mod intake;
pub mod up;

pub use squall_runtime as runtime;
pub use squall_topology as topology;

/// The registry of every component type this binary ships (spouts `lines`, `generator`;
/// bolts `split_words`, `count`, `jsonl`, `log`).
pub fn registry() -> topology::Registry {
    let mut registry = topology::Registry::new();
    squall_spouts::register(&mut registry);
    squall_bolts::register(&mut registry);
    registry
}
