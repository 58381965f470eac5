//! squall's topology model: what developers program against.
//!
//! - [`Value`], [`Tuple`], [`Fields`]: the data that flows.
//! - [`Spout`] and [`Bolt`] in Storm's vocabulary, with their collectors
//!   ([`SpoutOutputCollector`], [`OutputCollector`]) and named output streams.
//! - [`Grouping`]s: shuffle, fields, all, global, direct, local-or-shuffle, none,
//!   partial-key and custom, with their routing ([`GroupingRouter`]).
//! - Two ways to describe a topology, one validator: [`TopologyBuilder`] in code,
//!   [`load_topology_file`] for TOML/YAML files with component types from a [`Registry`].
//!   Both produce a [`TopologyDef`]; [`TopologyDef::validate`] reports every problem at
//!   once ([`ValidationErrors`]) or returns a runnable [`Topology`].
//! - [`Offload`]: a bolt's blocking work (databases, librdkafka, subprocesses) on a
//!   dedicated thread, bounded, with held tuples and completion through the waker.
#![warn(missing_docs)]

mod backoff;
mod bolt;
mod builder;
mod collector;
mod context;
mod def;
mod error;
mod file;
mod grouping;
mod offload;
mod registry;
mod spout;
mod tuple;
mod validate;
mod value;

pub use backoff::Backoff;
pub use bolt::{Bolt, BoltFactory};
pub use builder::{BoltDeclarer, TopologyBuilder};
pub use collector::{
    AckAction, Anchors, Emission, OutputCollector, OutputDeclarer, SpoutOutputCollector,
    StreamDecl, TaskIdsSink,
};
pub use context::{BoltWaker, ComponentKind, TopologyContext};
pub use def::{ComponentDef, ComponentSource, GroupingDef, InputDef, TopologyConfig, TopologyDef};
pub use error::{BoltError, ComponentError, FailReason, ValidationError, ValidationErrors};
pub use file::{
    load_topology_file, load_topology_toml, parse_document, EnvOverrides, FileError, ENV_PREFIX,
};
pub use grouping::{fields_task, CustomGrouping, Grouping, GroupingRouter, Targets};
pub use offload::{Offload, OffloadConfig, OffloadError, Worker};
pub use registry::{Options, Registry};
pub use spout::{Spout, SpoutFactory, SpoutStatus};
pub use tuple::{
    intern, Fields, MessageId, SourceMeta, TaskId, Tuple, TupleEdges, Values, DEFAULT_STREAM,
    SYSTEM_COMPONENT, TICK_STREAM,
};
pub use validate::{panic_message, suggest, ComponentSpec, Factory, Subscription, Topology};
pub use value::{Str, Value};
