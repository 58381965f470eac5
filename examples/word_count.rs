//! Word count with the code API: the same topology as
//! `examples/topologies/word_count.toml`, built with `TopologyBuilder` from the same
//! component types (`lines` -> `split_words` -> `count` fields-grouped by word), run to
//! completion, with the final counts printed as `word count` lines (sorted by word) and
//! checked against a direct count of the input file.
//!
//! Run: `cargo run --example word_count [-- PATH]` (default `examples/data/words.txt`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use squall_connectors::demo::{Count, CountConfig, SplitWords};
use squall_connectors::file::{LinesConfig, LinesSpout};
use squall_runtime::RunningTopology;
use squall_topology::{Bolt, BoltError, OutputCollector, TopologyBuilder, Tuple};

/// Keeps the latest count of every word (the count bolt emits a running count).
struct Latest(Arc<Mutex<BTreeMap<String, i64>>>);

impl Bolt for Latest {
    fn execute(&mut self, input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let word = input.str_by_field("word").unwrap_or_default().to_string();
        let count = input
            .get_by_field("count")
            .and_then(|v| v.as_int())
            .unwrap_or(0);
        let mut latest = self.0.lock().expect("not poisoned");
        let entry = latest.entry(word).or_insert(0);
        *entry = (*entry).max(count);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/data/words.txt".into());

    let mut builder = TopologyBuilder::new("word-count");
    let lines = LinesConfig {
        path: path.clone().into(),
    };
    builder.set_spout("text", 1, move || LinesSpout::new(lines.clone()));
    builder
        .set_bolt("split", 2, || SplitWords)
        .shuffle_grouping("text");
    builder
        .set_bolt("count", 2, || {
            Count::new(CountConfig {
                field: "word".into(),
            })
            .expect("valid field")
        })
        .fields_grouping("split", ["word"]);
    let latest = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = latest.clone();
    builder
        .set_bolt("latest", 1, move || Latest(sink.clone()))
        .shuffle_grouping("count");
    let topology = builder.build()?;

    let report = RunningTopology::start(topology)?.join().await;
    eprint!("{report}");

    let counts = latest.lock().expect("not poisoned").clone();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in std::fs::read_to_string(&path)?.split_whitespace() {
        *expected.entry(word.to_string()).or_default() += 1;
    }
    anyhow::ensure!(
        counts == expected,
        "topology counts differ from a direct count"
    );
    for (word, count) in &counts {
        println!("{word} {count}");
    }
    Ok(())
}
