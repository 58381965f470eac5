//! The `squall` package: the command-line binary, its component registry, examples,
//! benchmarks and end-to-end tests. The libraries are `squall-topology` (the model),
//! `squall-runtime` (running it), `squall-connectors` (Kafka, multi-lang, files, demo
//! components), `squall-alerting` (the alert domain), `squall-store-sqlite` (its embedded
//! storage) and `squall-pipeline` (the alert bolts).
#![warn(missing_docs)]

pub mod admin;
pub mod bench;
pub mod fleet;
pub mod intake;
pub mod up;

pub use squall_runtime as runtime;
pub use squall_topology as topology;

/// The registry of every component type this binary ships: the connectors' (spouts
/// `lines`, `generator`, `kafka`, `shell`; bolts `split_words`, `count`, `jsonl`, `log`,
/// `chaos`, `kafka`, `shell`) and the alert pipeline's (`enrich`, `split`, `store`,
/// `threshold`, `notify`, `deliver`).
pub fn registry() -> topology::Registry {
    let mut registry = topology::Registry::new();
    squall_connectors::register(&mut registry);
    squall_pipeline::register(&mut registry);
    registry
}
