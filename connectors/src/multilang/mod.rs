//! Storm's multi-lang protocol: spouts and bolts written in other languages (Python
//! through `pystorm`/streamparse, Storm's own `storm.py`, ...) run as child processes
//! speaking JSON over stdin/stdout.
//!
//! - [`ShellSpout`] and [`ShellBolt`] (type `shell`, options [`ShellConfig`]): one child
//!   per task, supervised on dedicated threads (handshake, heartbeats, restart with
//!   back-off, stderr into the logs), acking and anchoring through squall's own acker.
//! - The wire layer: the framing ([`Serializer`], JSON by default), the messages squall
//!   sends ([`handshake`], [`tuple_message`], [`heartbeat`], the spout commands) and the
//!   commands a child sends back ([`ShellMsg`]).

mod bolt;
mod config;
mod process;
mod protocol;
mod spout;
#[cfg(test)]
mod testkit;

pub use bolt::ShellBolt;
pub use config::ShellConfig;
pub use protocol::*;
pub use spout::ShellSpout;
