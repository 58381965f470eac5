//! squall's built-in bolts.
//!
//! - `split_words` ([`SplitWords`]): field `line` -> one tuple per whitespace-separated `word`.
//! - `count` ([`Count`]): a running count per value of a field (Storm's rolling count).
//! - `jsonl` ([`Jsonl`]): appends each tuple as a JSON object line to a file.
//! - `log` ([`Log`]): logs each tuple.
//! - `chaos` ([`Chaos`]): passes tuples through, failing, panicking or stalling on some.
//! - `kafka` ([`KafkaBolt`]): produces each tuple to a topic, acked on the delivery report.
//! - `enrich` ([`alert::enrich::Enrich`]): agent-key, account, device and quota checks.
//! - `split`, `store` ([`alert::store`]): metric points, written to the metrics database.
//! - `shell` ([`multilang::ShellBolt`], and the spout [`multilang::ShellSpout`]): a child
//!   process speaking Storm's multi-lang protocol (pystorm, streamparse, `storm.py`).
#![warn(missing_docs)]

pub mod alert;
mod basic;
mod chaos;
mod kafka;
pub mod multilang;

pub use basic::{
    Count, CountConfig, Jsonl, JsonlConfig, Log, LogConfig, SplitWords, SplitWordsConfig,
};
pub use chaos::{Chaos, ChaosConfig};
pub use kafka::{KafkaBolt, KafkaBoltConfig};

use squall_topology::Registry;

/// Registers the built-in bolt types (`split_words`, `count`, `jsonl`, `log`, `chaos`,
/// `kafka`, the alert pipeline's, `shell`) and the multi-lang `shell` spout.
pub fn register(registry: &mut Registry) {
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
    registry.register_bolt("kafka", |c: &KafkaBoltConfig| KafkaBolt::new(c.clone()));
    registry.register_bolt("split", |_: &alert::store::SplitConfig| {
        Ok(alert::store::Split)
    });
    registry.register_bolt("store", |c: &alert::store::StoreConfig| {
        alert::store::Store::new(c.clone())
    });
    registry.register_bolt("enrich", |c: &alert::enrich::EnrichConfig| {
        alert::enrich::Enrich::new(c.clone())
    });
    registry.register_bolt("threshold", |c: &alert::threshold::ThresholdConfig| {
        alert::threshold::Threshold::new(c.clone())
    });
    registry.register_bolt("notify", |_: &alert::notify::NotifyConfig| {
        Ok(alert::notify::Notify)
    });
    registry.register_bolt("deliver", |c: &alert::notify::DeliverConfig| {
        alert::notify::Deliver::new(c.clone())
    });
}
