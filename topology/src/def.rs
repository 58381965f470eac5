//! The raw topology description that both the [`TopologyBuilder`](crate::TopologyBuilder)
//! and topology files produce, before validation.

use serde::{Deserialize, Serialize};

use crate::bolt::BoltFactory;
use crate::context::ComponentKind;
use crate::error::ValidationError;
use crate::grouping::Grouping;
use crate::spout::SpoutFactory;
use crate::tuple::DEFAULT_STREAM;

/// Runtime settings of a topology (the `[topology]` section of a file, besides `name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Capacity of each task's input queue, in tuples. A full queue makes its producers
    /// wait (backpressure). Default 1024.
    pub queue_capacity: usize,
    /// Tuples moved per queue operation: emissions are flushed when a batch fills or the
    /// producer has nothing else to do. Clamped to `queue_capacity`. Default 64.
    pub batch_size: usize,
    /// How long a spout that emitted nothing waits before it is asked again, in
    /// milliseconds. Default 1.
    pub idle_wait_ms: u64,
    /// How long a graceful shutdown waits for in-flight tuples to drain before the
    /// remaining tasks are stopped, in milliseconds. Default 30000.
    pub shutdown_timeout_ms: u64,
    /// One in how many executions is timed for the execute-latency histogram (Storm
    /// samples 1 in 20). 1 times every execution. Default 16.
    pub latency_sample_every: u32,
    /// Guaranteed processing: track every tuple a spout emits with a message id and call
    /// the spout's `ack` or `fail` when its tree completes or fails. When false, tracked
    /// tuples are acked as soon as they are emitted. Default true.
    pub acking: bool,
    /// Number of acker tasks. Default 1.
    pub ackers: usize,
    /// A tuple that stays inside a bolt (taken from its queue, not yet acked or failed)
    /// longer than this fails its tree with reason `Timeout`. Time in queues does not
    /// count. Default 30000.
    pub message_timeout_ms: u64,
    /// Most tracked trees in flight per spout task; the spout is not asked for more until
    /// some complete. 0 means no limit. Default 4096.
    pub max_spout_pending: usize,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            queue_capacity: 1024,
            batch_size: 64,
            idle_wait_ms: 1,
            shutdown_timeout_ms: 30_000,
            latency_sample_every: 16,
            acking: true,
            ackers: 1,
            message_timeout_ms: 30_000,
            max_spout_pending: 4096,
        }
    }
}

/// Where a component's instances come from.
#[derive(Clone)]
pub enum ComponentSource {
    /// A spout factory given in code.
    Spout(SpoutFactory),
    /// A bolt factory given in code.
    Bolt(BoltFactory),
    /// A component type from the [`Registry`](crate::Registry), with its options.
    Registered {
        /// The registered type name.
        type_name: String,
        /// The options handed to the type's factory.
        options: serde_json::Map<String, serde_json::Value>,
    },
}

impl std::fmt::Debug for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::Spout(_) => f.write_str("Spout(<factory>)"),
            ComponentSource::Bolt(_) => f.write_str("Bolt(<factory>)"),
            ComponentSource::Registered { type_name, options } => f
                .debug_struct("Registered")
                .field("type_name", type_name)
                .field("options", options)
                .finish(),
        }
    }
}

/// A grouping as written: either already built, or named (from a file).
#[derive(Clone, Debug)]
pub enum GroupingDef {
    /// A grouping built in code.
    Built(Grouping),
    /// A grouping by name, as in a topology file.
    Named {
        /// `shuffle`, `fields`, `all`, `global`, `direct`, `local_or_shuffle`, `none`,
        /// `partial_key` or `custom`.
        name: String,
        /// Key fields of `fields` and `partial_key`.
        fields: Vec<String>,
        /// The registered custom grouping of `custom`.
        custom: Option<String>,
    },
}

/// One subscription of a bolt.
#[derive(Clone, Debug)]
pub struct InputDef {
    /// The component subscribed to.
    pub from: String,
    /// Its stream (default `default`).
    pub stream: String,
    /// How tuples are spread over the bolt's tasks.
    pub grouping: GroupingDef,
}

impl InputDef {
    /// A subscription to `stream` of `from` with `grouping`.
    pub fn new(from: impl Into<String>, stream: impl Into<String>, grouping: Grouping) -> Self {
        InputDef {
            from: from.into(),
            stream: stream.into(),
            grouping: GroupingDef::Built(grouping),
        }
    }

    /// A subscription to the default stream of `from` with `grouping`.
    pub fn default_stream(from: impl Into<String>, grouping: Grouping) -> Self {
        InputDef::new(from, DEFAULT_STREAM, grouping)
    }
}

/// One component as described, before validation.
#[derive(Clone, Debug)]
pub struct ComponentDef {
    /// Unique id.
    pub id: String,
    /// Spout or bolt.
    pub kind: ComponentKind,
    /// Number of tasks (must be at least 1).
    pub parallelism: i64,
    /// Factory or registered type.
    pub source: ComponentSource,
    /// Subscriptions (bolts only).
    pub inputs: Vec<InputDef>,
    /// Period of tick tuples sent to the bolt, if any.
    pub tick_interval_ms: Option<u64>,
}

/// A whole topology as described, before validation.
#[derive(Clone, Debug, Default)]
pub struct TopologyDef {
    /// The topology's name.
    pub name: String,
    /// Runtime settings.
    pub config: TopologyConfig,
    /// Components in the order given.
    pub components: Vec<ComponentDef>,
    /// Problems found while reading a file, reported with the validator's.
    pub(crate) problems: Vec<ValidationError>,
    /// Components of a file whose sections could not be read (their problems are in
    /// `problems`); they count as present so they cause no follow-on errors.
    pub(crate) unreadable: Vec<(String, ComponentKind)>,
}

impl TopologyDef {
    /// An empty description named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TopologyDef {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The component with `id`, if any.
    pub fn component_mut(&mut self, id: &str) -> Option<&mut ComponentDef> {
        self.components.iter_mut().find(|c| c.id == id)
    }
}
