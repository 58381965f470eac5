//! Files: the `lines` spout (one tuple per line of a file, finite, replaying failed lines)
//! and the `jsonl` bolt (one JSON object line per tuple).

mod jsonl;
mod lines;

pub use jsonl::{Jsonl, JsonlConfig};
pub use lines::{LinesConfig, LinesSpout};
