//! squall's connectors: one module per external system, each with its spouts and bolts.
//!
//! - [`kafka`]: the `kafka` spout ([`kafka::KafkaSpout`], a consumer-group member per
//!   task, at-least-once) and the `kafka` bolt ([`kafka::KafkaBolt`], acked on the
//!   broker's delivery report).
//! - [`journal`]: the durable embedded broker those use when `brokers` is `journal:DIR`.
//! - [`multilang`]: the `shell` spout and bolt, a child process speaking Storm's
//!   multi-lang protocol (pystorm, streamparse, `storm.py`).
//! - [`file`](mod@file): the `lines` spout and the `jsonl` bolt.
//! - [`demo`]: `generator`, `split_words`, `count`, `log` and `chaos`.
//!
//! `lines` and `generator` track their tuples under guaranteed processing and replay
//! failed ones.
#![warn(missing_docs)]

pub mod demo;
pub mod file;
pub mod journal;
pub mod kafka;
pub mod multilang;

use squall_topology::Registry;

/// Registers every connector's component types: spouts `lines`, `generator`, `kafka`,
/// `shell`; bolts `split_words`, `count`, `jsonl`, `log`, `chaos`, `kafka`, `shell`.
pub fn register(registry: &mut Registry) {
    use demo::*;
    use file::*;
    registry.register_spout("lines", |c: &LinesConfig| Ok(LinesSpout::new(c.clone())));
    registry.register_spout("generator", |c: &GeneratorConfig| {
        Ok(GeneratorSpout::new(c.clone()))
    });
    registry.register_spout("kafka", |c: &kafka::KafkaSpoutConfig| {
        kafka::KafkaSpout::new(c.clone())
    });
    registry.register_spout("shell", |c: &multilang::ShellConfig| {
        multilang::ShellSpout::new(c.clone())
    });
    registry.register_bolt("shell", |c: &multilang::ShellConfig| {
        multilang::ShellBolt::new(c.clone())
    });
    registry.register_bolt("split_words", |_: &SplitWordsConfig| Ok(SplitWords));
    registry.register_bolt("count", |c: &CountConfig| Count::new(c.clone()));
    registry.register_bolt("jsonl", |c: &JsonlConfig| Ok(Jsonl::new(c.clone())));
    registry.register_bolt("log", |c: &LogConfig| Log::new(c.clone()));
    registry.register_bolt("chaos", |c: &ChaosConfig| Chaos::new(c.clone()));
    registry.register_bolt("kafka", |c: &kafka::KafkaBoltConfig| {
        kafka::KafkaBolt::new(c.clone())
    });
}
