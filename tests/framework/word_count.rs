//! The word-count topology built in code and read from `examples/topologies/word_count.toml`
//! computes the same, exact counts.

use std::collections::BTreeMap;

use squall_connectors::demo::{Count, CountConfig, SplitWords};
use squall_connectors::file::{LinesConfig, LinesSpout};
use squall_runtime::testing::CompleteTopology;
use squall_topology::{
    load_topology_file, EnvOverrides, Topology, TopologyBuilder, DEFAULT_STREAM,
};

const WORDS: &str = "examples/data/words.txt";

fn expected() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for w in std::fs::read_to_string(WORDS).unwrap().split_whitespace() {
        *counts.entry(w.to_string()).or_default() += 1;
    }
    counts
}

/// Final count per word: the highest running count the `count` bolt emitted.
async fn final_counts(topology: Topology) -> BTreeMap<String, i64> {
    let done = CompleteTopology::new(topology).run().await.unwrap();
    let mut counts = BTreeMap::new();
    for v in done.values("count", DEFAULT_STREAM) {
        let c = counts.entry(v[0].to_string()).or_insert(0);
        *c = (*c).max(v[1].as_int().unwrap());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_and_file_topologies_count_the_same() {
    let mut b = TopologyBuilder::new("word-count");
    let lines = LinesConfig { path: WORDS.into() };
    b.set_spout("text", 1, move || LinesSpout::new(lines.clone()));
    b.set_bolt("split", 2, || SplitWords)
        .shuffle_grouping("text");
    b.set_bolt("count", 2, || {
        Count::new(CountConfig {
            field: "word".into(),
        })
        .unwrap()
    })
    .fields_grouping("split", ["word"]);
    let from_code = final_counts(b.build().unwrap()).await;

    let out = tempfile::tempdir().unwrap();
    let sets = [format!(
        "bolts.out.path={}",
        out.path().join("wc.jsonl").display()
    )];
    let def = load_topology_file(
        "examples/topologies/word_count.toml".as_ref(),
        &sets,
        &EnvOverrides::Off,
    )
    .unwrap();
    let from_file = final_counts(def.validate(&squall::registry()).unwrap()).await;

    assert_eq!(from_code, expected());
    assert_eq!(from_file, expected());

    // The file's jsonl sink saw every update; its last count per word is the final one.
    let mut from_jsonl: BTreeMap<String, i64> = BTreeMap::new();
    for line in std::fs::read_to_string(out.path().join("wc.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let c = from_jsonl
            .entry(v["word"].as_str().unwrap().to_string())
            .or_insert(0);
        *c = (*c).max(v["count"].as_i64().unwrap());
    }
    assert_eq!(from_jsonl, expected());
}

#[tokio::test]
async fn parallelism_override_keeps_counts_exact() {
    let sets = [
        "bolts.count.parallelism=5".to_string(),
        "bolts.split.parallelism=3".to_string(),
        "bolts.out.path=/dev/null".to_string(),
    ];
    let def = load_topology_file(
        "examples/topologies/word_count.toml".as_ref(),
        &sets,
        &EnvOverrides::Off,
    )
    .unwrap();
    let topology = def.validate(&squall::registry()).unwrap();
    assert_eq!(topology.component("count").unwrap().parallelism, 5);
    assert_eq!(final_counts(topology).await, expected());
}
