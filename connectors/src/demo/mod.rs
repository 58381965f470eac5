//! Components for examples, tests and benchmarks: the `generator` spout, the word count's
//! `split_words` and `count`, `log`, and `chaos` (deterministic failures, panics and stalls
//! for testing guarantees).

mod chaos;
mod generator;
mod log;
mod words;

pub use chaos::{Chaos, ChaosConfig};
pub use generator::{GeneratorConfig, GeneratorSpout};
pub use log::{Log, LogConfig};
pub use words::{Count, CountConfig, SplitWords, SplitWordsConfig};
