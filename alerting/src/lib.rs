//! squall's alert domain, free of any framework or database: what a monitoring alert
//! pipeline *means*, which the `squall-pipeline` bolts run on a topology and the storage
//! crates (`squall-store-sqlite`, ...) persist.
//!
//! - [`ids`]: [`ids::DeviceId`], [`ids::ConfigId`].
//! - [`envelope`]: the intake -> `enrich` contract ([`envelope::Envelope`]).
//! - [`payload`]: agent payloads (v1, v2) parsed into metric points.
//! - [`accounts`]: accounts, agent keys, devices and the quota.
//! - [`configs`]: alert configs as the API takes them, with validation that names fields.
//! - [`lang`]: the alert rule language (`avg(system.load.1, 5m) >= 4 for 2m`): parser,
//!   normal form, errors with their position.
//! - [`rules`]: the wait / repeat / fix / no-data state machine per (rule, device, series).
//! - [`engine`]: evaluation with durable state, over the storage traits.
//! - [`events`]: alert events, their ids, labels, fingerprint and summary.
//! - [`notify`]: notifications, the bodies of each receiver type, the retry policy.
//! - [`policy`]: silences, maintenance windows, grouping and flapping: which
//!   notifications are sent, and together.
//! - [`fixtures`]: accounts, keys and configs in one file, for import.
//! - [`wire`]: agent request bodies (v1 form, v2 zlib/gzip JSON) decoded and checked
//!   against the intake's limits, free of HTTP.
//! - [`store`]: the storage traits, [`store::StoreError`] (transient or permanent), an
//!   in-memory implementation and the conformance suite every backend passes.
#![warn(missing_docs)]

pub mod accounts;
pub mod configs;
pub mod engine;
pub mod envelope;
mod error;
pub mod events;
pub mod fixtures;
pub mod ids;
pub mod lang;
pub mod notify;
pub mod payload;
pub mod policy;
pub mod rules;
pub mod store;
pub mod wire;
