//! squall's built-in spouts.
//!
//! - `lines` ([`LinesSpout`]): one tuple per line of a file; finite.
//! - `generator` ([`GeneratorSpout`]): `n` = 0, 1, 2, ...; endless or `count` tuples.
//! - `kafka` ([`kafka::KafkaSpout`]): a consumer-group member per task, at-least-once.
//!
//! `lines` and `generator` track their tuples under guaranteed processing and replay failed ones.
#![warn(missing_docs)]

mod generator;
pub mod kafka;
mod lines;

pub use generator::{GeneratorConfig, GeneratorSpout};
pub use lines::{LinesConfig, LinesSpout};

use squall_topology::Registry;

/// Registers the built-in spout types (`lines`, `generator`, `kafka`).
pub fn register(registry: &mut Registry) {
    registry.register_spout("lines", |c: &LinesConfig| Ok(LinesSpout::new(c.clone())));
    registry.register_spout("generator", |c: &GeneratorConfig| {
        Ok(GeneratorSpout::new(c.clone()))
    });
    registry.register_spout("kafka", |c: &kafka::KafkaSpoutConfig| {
        kafka::KafkaSpout::new(c.clone())
    });
}
