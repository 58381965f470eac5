//! squall's benchmarks of the alert pipeline, run by `squall bench`:
//!
//! - [`fleet`]: simulated agents over HTTP -> intake -> Kafka -> the alert topology, with
//!   per-stage latency percentiles, a JSON report and a plot;
//! - [`pipeline`]: the alert topology fed from memory (no HTTP, no broker), as fast as it
//!   goes;
//! - [`generate`]: inputs for `pipeline`;
//! - [`wordcount`]: the peers' W1 word count as a squall topology;
//! - [`multilang`]: a Python bolt against the same bolt in Rust;
//! - [`chaos`]: `squall up` killed at random while a fleet posts, checked against a
//!   fault-free run.
//!
//! Benchmarks measure; tests never assert on their figures.
#![warn(missing_docs)]

pub mod chaos;
pub mod fleet;
pub mod generate;
pub mod multilang;
pub mod pipeline;
mod processes;
pub mod wordcount;

/// The registry of every component type squall ships (connectors and pipeline).
pub fn registry() -> squall_topology::Registry {
    let mut registry = squall_topology::Registry::new();
    squall_connectors::register(&mut registry);
    squall_pipeline::register(&mut registry);
    registry
}
