//! squall's alert pipeline: the bolts that run the `squall-alerting` domain on a
//! topology, thin over it, and the factory that opens its stores.
//!
//! `payloads` (Kafka) -> [`enrich`] (account, agent key, device, quota) -> [`split`]
//! (metric points) -> [`store`] (metric storage) and [`threshold`] (alert rules with
//! durable state) -> [`notify`] (one notification per recipient) -> Kafka -> [`policy`]
//! (silences, maintenance windows, grouping) -> [`deliver`] (the notifier: HTTP
//! delivery with retries).
//!
//! - [`stage`]: the contract between stages (stream and field names, typed values),
//!   declared once; no JSON between Rust stages.
//! - [`stores`]: a database URL -> the storage backend. Bolts hold no SQL.
//! - [`topologies`]: the alert topology and the notifier, built in code.
//! - Blocking storage calls run on dedicated threads through
//!   [`squall_topology::Offload`].
#![warn(missing_docs)]

pub mod deliver;
pub mod enrich;
pub mod notify;
pub mod ownership;
pub mod policy;
pub mod split;
pub mod stage;
pub mod store;
pub mod stores;
pub mod threshold;
pub mod topologies;

use squall_topology::Registry;

/// Registers the alert pipeline's bolt types: `enrich`, `split`, `store`, `threshold`,
/// `notify`, `policy`, `deliver`.
pub fn register(registry: &mut Registry) {
    registry.register_bolt("enrich", |c: &enrich::EnrichConfig| {
        enrich::Enrich::new(c.clone())
    });
    registry.register_bolt("split", |_: &split::SplitConfig| Ok(split::Split));
    registry.register_bolt("store", |c: &store::StoreConfig| {
        store::Store::new(c.clone())
    });
    registry.register_bolt("threshold", |c: &threshold::ThresholdConfig| {
        threshold::Threshold::new(c.clone())
    });
    registry.register_bolt("notify", |_: &notify::NotifyConfig| Ok(notify::Notify));
    registry.register_bolt("policy", |c: &policy::PolicyConfig| {
        policy::Policy::new(c.clone())
    });
    registry.register_bolt("deliver", |c: &deliver::DeliverConfig| {
        deliver::Deliver::new(c.clone())
    });
}
