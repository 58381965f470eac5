//! Storm's multi-lang protocol: how squall will run spouts and bolts written in other
//! languages (Python through `pystorm`/streamparse, Storm's own `storm.py`, ...) as child
//! processes speaking JSON over stdin/stdout.
//!
//! This module is the wire layer: the framing ([`Serializer`], JSON by default), the
//! messages squall sends ([`handshake`], [`tuple_message`], [`heartbeat`], the spout
//! commands) and the commands a child sends back ([`ShellMsg`]). The `shell` spout and
//! bolt types that supervise the processes build on it.

mod protocol;

pub use protocol::*;
