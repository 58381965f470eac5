//! `squall bench wordcount`: the W1 word count of the peer benchmarks as a squall
//! topology. The specification (the peers keep it beside the project; restated here):
//! N words (`--words`, 20,000,000) from the vocabulary `word0` .. `word{V-1}` (`--vocab`,
//! 10,000); `x = seed` (42; 0 means 0x9E3779B97F4A7C15), per word `x ^= x << 13;
//! x ^= x >> 7; x ^= x << 17` (64-bit, logical shifts), word = `"word" + (x mod V)`;
//! spout -> identity split -> fields grouping by word -> count (parallelism 2); output the
//! total count, the number of distinct words, the most frequent word (ties: the
//! lexicographically smallest) and its count, and `tuples_per_s = N / seconds`. For the
//! defaults: 20,000,000 words, 10,000 distinct, `word4480` x 2,174.
//!
//! `words` (spout, 1 task: the xorshift word stream) -> `split` (identity bolt, shuffle
//! grouping) -> `count` (fields grouping on `word`, `count_par` tasks). The counting tasks
//! hand their tables over when they finish; the report is the peers' JSON line (`words`,
//! `distinct`, `max_word`, `max_count`, `seconds`, `tuples_per_s`).
//!
//! Invariants: the word stream is exactly the spec's (`x ^= x << 13; x ^= x >> 7;
//! x ^= x << 17`, word = `"word" + x mod vocab`), so the totals equal the peers'; with
//! `acking` every word is a tracked tree (spout -> split -> count) and the run only ends
//! once every tree was acked; `seconds` runs from the topology's start to its last task's
//! end (start-up of the process and the vocabulary excluded, as the peers exclude theirs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use squall_runtime::RunningTopology;
use squall_topology::{
    Bolt, BoltError, Fields, MessageId, OutputCollector, OutputDeclarer, Spout,
    SpoutOutputCollector, SpoutStatus, TopologyBuilder, Tuple, Value, Values,
};

/// The options of one run.
#[derive(Clone, Debug, clap::Args)]
pub struct WordCountOptions {
    /// Words the spout emits.
    #[arg(long, default_value_t = 20_000_000)]
    pub words: u64,
    /// Vocabulary size: words are `word0` .. `word{vocab-1}`.
    #[arg(long, default_value_t = 10_000)]
    pub vocab: u64,
    /// xorshift seed (0 means 0x9E3779B97F4A7C15).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tasks of the identity `split` bolt (2, as in the Flink peer).
    #[arg(long, default_value_t = 2)]
    pub split_par: usize,
    /// Tasks of the `count` bolt.
    #[arg(long, default_value_t = 2)]
    pub count_par: usize,
    /// Track every word as a tuple tree (guaranteed processing).
    #[arg(long)]
    pub acking: bool,
    /// Tuples per batch between tasks (a throughput topology's setting, the hand-rolled
    /// peer's batch; the topology default is 64).
    #[arg(long, default_value = "1024")]
    pub batch_size: Option<usize>,
    /// Tuples a task queue holds (the topology default is 1024).
    #[arg(long, default_value = "8192")]
    pub queue_capacity: Option<usize>,
    /// Trees in flight per spout task with `--acking` (default: the topology default).
    #[arg(long)]
    pub max_spout_pending: Option<usize>,
}

/// What `bench wordcount` prints (one JSON line, the peers' W1 fields first).
#[derive(Clone, Debug, Serialize)]
pub struct WordCountReport {
    /// `"squall"`.
    pub r#impl: &'static str,
    /// Words counted (the sum of all counts).
    pub words: u64,
    /// Distinct words.
    pub distinct: u64,
    /// The most frequent word (ties: the lexicographically smallest).
    pub max_word: String,
    /// Its count.
    pub max_count: u64,
    /// Wall time of the topology run.
    pub seconds: f64,
    /// `words / seconds`.
    pub tuples_per_s: f64,
    /// Whether words were tracked.
    pub acking: bool,
    /// Tasks of `split`.
    pub split_par: usize,
    /// Tasks of `count`.
    pub count_par: usize,
    /// Tuples per batch.
    pub batch_size: usize,
}

/// The W1 word stream: xorshift64 over a fixed vocabulary.
#[derive(Clone, Debug)]
pub struct WordStream {
    x: u64,
    left: u64,
    vocab: Arc<[Value]>,
}

impl WordStream {
    /// `words` words of `vocab` (the pre-built `word0`.. values) from `seed`.
    pub fn new(words: u64, seed: u64, vocab: Arc<[Value]>) -> Self {
        WordStream {
            x: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
            left: words,
            vocab,
        }
    }

    /// The next word's index in the vocabulary.
    fn next_index(&mut self) -> usize {
        let mut x = self.x;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.x = x;
        (x % self.vocab.len() as u64) as usize
    }
}

/// The spout: emits the stream's words, tracked when `acking`.
struct WordSpout {
    stream: WordStream,
    acking: bool,
    next_id: u64,
}

/// Words emitted per `next_tuple` call.
const ROUND: u64 = 256;

impl Spout for WordSpout {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let n = self.stream.left.min(ROUND);
        for _ in 0..n {
            let i = self.stream.next_index();
            let mut v = Values::new();
            v.push(self.stream.vocab[i].clone());
            if self.acking {
                out.emit_tracked(v, MessageId(self.next_id));
                self.next_id += 1;
            } else {
                out.emit(v);
            }
        }
        self.stream.left -= n;
        if self.stream.left == 0 {
            SpoutStatus::Exhausted
        } else {
            SpoutStatus::Active
        }
    }
}

/// The identity split: emits its input's values, anchored to it.
struct Identity;

impl Bolt for Identity {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        out.emit(input.into_values());
        Ok(())
    }
}

/// One counting task's table, with the Fx hash (rustc's): SipHash would cost more than
/// the rest of a count, as the hand-rolled peer's FNV shows.
type Counts = HashMap<Value, u64, rustc_hash::FxBuildHasher>;

/// Counts per word; hands its table over when it finishes.
struct Counter {
    counts: Counts,
    results: Arc<Mutex<Vec<Counts>>>,
}

impl Bolt for Counter {
    fn execute(&mut self, input: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let Some(word) = input.into_values().into_iter().next() else {
            return Err(BoltError::msg("count: a tuple without a word"));
        };
        *self.counts.entry(word).or_insert(0) += 1;
        Ok(())
    }

    fn cleanup(&mut self) {
        let counts = std::mem::take(&mut self.counts);
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counts);
    }
}

/// Runs the word count once and reports it.
pub async fn wordcount(options: &WordCountOptions) -> anyhow::Result<WordCountReport> {
    anyhow::ensure!(options.vocab > 0, "--vocab must be at least 1");
    anyhow::ensure!(
        options.split_par > 0 && options.count_par > 0,
        "--split-par and --count-par must be at least 1"
    );
    let vocab: Arc<[Value]> = (0..options.vocab)
        .map(|i| Value::from(format!("word{i}")))
        .collect();
    let results = Arc::new(Mutex::new(Vec::new()));

    let mut builder = TopologyBuilder::new("bench-wordcount");
    let (words, seed, acking) = (options.words, options.seed, options.acking);
    builder.set_spout("words", 1, move || WordSpout {
        stream: WordStream::new(words, seed, vocab.clone()),
        acking,
        next_id: 0,
    });
    builder
        .set_bolt("split", options.split_par as i64, || Identity)
        .shuffle_grouping("words");
    let sink = results.clone();
    builder
        .set_bolt("count", options.count_par as i64, move || Counter {
            counts: Counts::default(),
            results: sink.clone(),
        })
        .fields_grouping("split", ["word"]);
    let config = builder.config();
    config.acking = options.acking;
    if let Some(b) = options.batch_size {
        config.batch_size = b;
    }
    if let Some(q) = options.queue_capacity {
        config.queue_capacity = q;
    }
    if let Some(p) = options.max_spout_pending {
        config.max_spout_pending = p;
    }
    let batch_size = config.batch_size.min(config.queue_capacity).max(1);
    let topology = builder.build()?;

    let started = Instant::now();
    let running = RunningTopology::start(topology)?;
    let report = running.join().await;
    let seconds = started.elapsed().as_secs_f64();
    let failed: u64 = report.components.iter().map(|c| c.failed).sum();
    anyhow::ensure!(failed == 0, "{failed} tuples failed");

    let tables = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let mut total = 0u64;
    let mut distinct = 0u64;
    let mut best: Option<(&str, u64)> = None;
    for table in &tables {
        distinct += table.len() as u64;
        for (word, &n) in table {
            total += n;
            let word = word.as_str().unwrap_or_default();
            best = match best {
                Some((w, c)) if c > n || (c == n && w <= word) => Some((w, c)),
                _ => Some((word, n)),
            };
        }
    }
    let (max_word, max_count) = best.map_or((String::new(), 0), |(w, c)| (w.to_string(), c));
    Ok(WordCountReport {
        r#impl: "squall",
        words: total,
        distinct,
        max_word,
        max_count,
        seconds,
        tuples_per_s: options.words as f64 / seconds,
        acking: options.acking,
        split_par: options.split_par,
        count_par: options.count_par,
        batch_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The W1 spec's word stream, written out again: the topology's totals must equal a
    /// plain count of it.
    fn plain_count(words: u64, vocab: u64, seed: u64) -> HashMap<String, u64> {
        let mut x = if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        };
        let mut counts = HashMap::new();
        for _ in 0..words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *counts.entry(format!("word{}", x % vocab)).or_insert(0) += 1;
        }
        counts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_topology_counts_what_the_spec_counts_with_and_without_acking() {
        let expected = plain_count(200_000, 1_000, 42);
        let mut best: Vec<(&String, &u64)> = expected.iter().collect();
        best.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for acking in [false, true] {
            let options = WordCountOptions {
                words: 200_000,
                vocab: 1_000,
                seed: 42,
                split_par: 2,
                count_par: 2,
                acking,
                batch_size: None,
                queue_capacity: None,
                max_spout_pending: None,
            };
            let r = wordcount(&options).await.expect("runs");
            assert_eq!(r.words, 200_000, "acking {acking}");
            assert_eq!(r.distinct, expected.len() as u64);
            assert_eq!((&r.max_word, &r.max_count), (best[0].0, best[0].1));
        }
    }

    #[test]
    fn seed_zero_is_the_golden_ratio() {
        let vocab: Arc<[Value]> = vec![Value::Null; 10].into();
        let mut a = WordStream::new(1, 0, vocab.clone());
        let mut b = WordStream::new(1, 0x9E37_79B9_7F4A_7C15, vocab);
        assert_eq!(a.next_index(), b.next_index());
    }
}
