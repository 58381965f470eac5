//! squall's HTTP services: the intake agents post their payloads to ([`intake`]), and the
//! admin API operators manage accounts, keys, devices and alert configs with, and read
//! alerts, notifications and metrics from ([`admin`]), and the operator web UI ([`ui`]).
//!
//! They take their settings as plain values: defaults, `squall.toml` and flags are the
//! binary's config module's business.
#![warn(missing_docs)]

pub mod admin;
pub mod intake;
pub mod serve;
pub mod ui;
