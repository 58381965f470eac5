//! The `squall` binary's library: its command line ([`cli`]), what each command does
//! ([`commands`]), the configuration of the service commands and the one place its
//! defaults live ([`config`]), and the registry of every component type it ships.
//!
//! The libraries: `squall-topology` (the model), `squall-runtime` (running it),
//! `squall-connectors` (Kafka, multi-lang, files, demo components), `squall-alerting` (the
//! alert domain), `squall-store-sqlite` (its embedded storage), `squall-pipeline` (the
//! alert bolts and topologies), `squall-services` (intake, admin API), `squall-bench`.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;

pub use squall_runtime as runtime;
pub use squall_topology as topology;

/// The registry of every component type this binary ships: the connectors' (spouts
/// `lines`, `generator`, `kafka`, `shell`; bolts `split_words`, `count`, `jsonl`, `log`,
/// `chaos`, `kafka`, `shell`) and the alert pipeline's (`enrich`, `split`, `store`,
/// `threshold`, `notify`, `deliver`).
pub fn registry() -> topology::Registry {
    squall_bench::registry()
}
