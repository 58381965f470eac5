//! The `generator` spout.

use std::collections::VecDeque;

use serde::Deserialize;
use squall_topology::{
    values, FailReason, Fields, MessageId, OutputDeclarer, Spout, SpoutOutputCollector,
    SpoutStatus, TopologyContext,
};

/// Options of the `generator` spout.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// How many tuples to emit in all; absent means endless.
    #[serde(default)]
    pub count: Option<u64>,
}

/// Emits field `n` = 0, 1, 2, ... (`count` tuples, or endless), each tracked under
/// message id `n`; replays the `n` of every failed tuple. With several tasks, task `i` of
/// `p` emits the numbers `n` with `n % p == i`, so the topology emits each number once.
#[derive(Debug)]
pub struct GeneratorSpout {
    config: GeneratorConfig,
    next: u64,
    step: u64,
    replay: VecDeque<u64>,
}

impl GeneratorSpout {
    /// A generator with `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        GeneratorSpout {
            config,
            next: 0,
            step: 1,
            replay: VecDeque::new(),
        }
    }
}

impl Spout for GeneratorSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(Fields::new(["n"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), squall_topology::ComponentError> {
        self.next = ctx.task_index() as u64;
        self.step = ctx.parallelism().max(1) as u64;
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        if let Some(n) = self.replay.pop_front() {
            out.emit_tracked(values![n], MessageId(n));
            return SpoutStatus::Active;
        }
        if self.config.count.is_some_and(|c| self.next >= c) {
            return SpoutStatus::Exhausted;
        }
        let n = self.next;
        self.next += self.step;
        out.emit_tracked(values![n], MessageId(n));
        SpoutStatus::Active
    }

    fn fail(&mut self, id: MessageId, _reason: &FailReason) {
        self.replay.push_back(id.0);
    }
}
