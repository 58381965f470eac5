//! [`TopologyBuilder`]: topologies in code, mirroring the file format.

use std::sync::Arc;

use crate::bolt::{Bolt, BoltFactory};
use crate::context::ComponentKind;
use crate::def::{ComponentDef, ComponentSource, InputDef, TopologyConfig, TopologyDef};
use crate::error::ValidationErrors;
use crate::grouping::{CustomGrouping, Grouping};
use crate::registry::{Options, Registry};
use crate::spout::{Spout, SpoutFactory};
use crate::tuple::DEFAULT_STREAM;
use crate::validate::Topology;

/// Builds a topology in code (Storm's `TopologyBuilder`).
///
/// ```
/// use squall_topology::*;
///
/// struct Numbers(i64);
/// impl Spout for Numbers {
///     fn declare_outputs(&self, d: &mut OutputDeclarer) { d.declare(Fields::new(["n"])); }
///     fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
///         if self.0 == 0 { return SpoutStatus::Exhausted; }
///         self.0 -= 1;
///         out.emit(values![self.0]);
///         SpoutStatus::Active
///     }
/// }
/// struct Sink;
/// impl Bolt for Sink {
///     fn execute(&mut self, _t: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> { Ok(()) }
/// }
///
/// let mut b = TopologyBuilder::new("numbers");
/// b.set_spout("numbers", 1, || Numbers(10));
/// b.set_bolt("sink", 2, || Sink).fields_grouping("numbers", ["n"]);
/// let topology = b.build().unwrap();
/// assert_eq!(topology.task_count(), 3);
/// ```
pub struct TopologyBuilder {
    def: TopologyDef,
}

impl std::fmt::Debug for TopologyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyBuilder").finish_non_exhaustive()
    }
}

/// Declares the inputs of a bolt just added with [`TopologyBuilder::set_bolt`].
pub struct BoltDeclarer<'a> {
    def: &'a mut ComponentDef,
}

impl std::fmt::Debug for BoltDeclarer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoltDeclarer").finish_non_exhaustive()
    }
}

impl TopologyBuilder {
    /// A builder for a topology named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TopologyBuilder {
            def: TopologyDef::new(name),
        }
    }

    /// Runtime settings.
    pub fn config(&mut self) -> &mut TopologyConfig {
        &mut self.def.config
    }

    /// Adds spout `id` with `parallelism` tasks, each made by `make`.
    pub fn set_spout<S, F>(&mut self, id: &str, parallelism: i64, make: F) -> &mut Self
    where
        S: Spout,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let factory: SpoutFactory = Arc::new(move || Box::new(make()));
        self.push(
            id,
            ComponentKind::Spout,
            parallelism,
            ComponentSource::Spout(factory),
        );
        self
    }

    /// Adds spout `id` of registered type `type_name` with `options`.
    pub fn set_registered_spout(
        &mut self,
        id: &str,
        parallelism: i64,
        type_name: &str,
        options: Options,
    ) -> &mut Self {
        let source = ComponentSource::Registered {
            type_name: type_name.into(),
            options,
        };
        self.push(id, ComponentKind::Spout, parallelism, source);
        self
    }

    /// Adds bolt `id` with `parallelism` tasks, each made by `make`; declare its inputs on
    /// the returned [`BoltDeclarer`].
    pub fn set_bolt<B, F>(&mut self, id: &str, parallelism: i64, make: F) -> BoltDeclarer<'_>
    where
        B: Bolt,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let factory: BoltFactory = Arc::new(move || Box::new(make()));
        self.push(
            id,
            ComponentKind::Bolt,
            parallelism,
            ComponentSource::Bolt(factory),
        )
    }

    /// Adds bolt `id` of registered type `type_name` with `options`.
    pub fn set_registered_bolt(
        &mut self,
        id: &str,
        parallelism: i64,
        type_name: &str,
        options: Options,
    ) -> BoltDeclarer<'_> {
        let source = ComponentSource::Registered {
            type_name: type_name.into(),
            options,
        };
        self.push(id, ComponentKind::Bolt, parallelism, source)
    }

    fn push(
        &mut self,
        id: &str,
        kind: ComponentKind,
        parallelism: i64,
        source: ComponentSource,
    ) -> BoltDeclarer<'_> {
        self.def.components.push(ComponentDef {
            id: id.to_string(),
            kind,
            parallelism,
            source,
            inputs: Vec::new(),
            tick_interval_ms: None,
        });
        BoltDeclarer {
            def: self.def.components.last_mut().expect("just pushed"),
        }
    }

    /// The raw description (for inspection or further edits before validation).
    pub fn into_def(self) -> TopologyDef {
        self.def
    }

    /// Validates the topology (code components only; see [`build_with`](Self::build_with)).
    pub fn build(self) -> Result<Topology, ValidationErrors> {
        self.def.validate(&Registry::new())
    }

    /// Validates the topology, resolving registered components from `registry`.
    pub fn build_with(self, registry: &Registry) -> Result<Topology, ValidationErrors> {
        self.def.validate(registry)
    }
}

impl BoltDeclarer<'_> {
    /// Subscribes to `stream` of `from` with `grouping`.
    pub fn grouping(self, from: &str, stream: &str, grouping: Grouping) -> Self {
        self.def.inputs.push(InputDef::new(from, stream, grouping));
        self
    }

    /// Shuffle grouping on the default stream of `from`.
    pub fn shuffle_grouping(self, from: &str) -> Self {
        self.grouping(from, DEFAULT_STREAM, Grouping::Shuffle)
    }

    /// Fields grouping on the default stream of `from`, keyed by `fields`.
    pub fn fields_grouping<S: Into<String>>(
        self,
        from: &str,
        fields: impl IntoIterator<Item = S>,
    ) -> Self {
        let fields = fields.into_iter().map(Into::into).collect();
        self.grouping(from, DEFAULT_STREAM, Grouping::Fields(fields))
    }

    /// All grouping on the default stream of `from`.
    pub fn all_grouping(self, from: &str) -> Self {
        self.grouping(from, DEFAULT_STREAM, Grouping::All)
    }

    /// Global grouping on the default stream of `from`.
    pub fn global_grouping(self, from: &str) -> Self {
        self.grouping(from, DEFAULT_STREAM, Grouping::Global)
    }

    /// Direct grouping on direct stream `stream` of `from`.
    pub fn direct_grouping(self, from: &str, stream: &str) -> Self {
        self.grouping(from, stream, Grouping::Direct)
    }

    /// Local-or-shuffle grouping on the default stream of `from`.
    pub fn local_or_shuffle_grouping(self, from: &str) -> Self {
        self.grouping(from, DEFAULT_STREAM, Grouping::LocalOrShuffle)
    }

    /// None grouping on the default stream of `from`.
    pub fn none_grouping(self, from: &str) -> Self {
        self.grouping(from, DEFAULT_STREAM, Grouping::None)
    }

    /// Partial-key grouping on the default stream of `from`, keyed by `fields`.
    pub fn partial_key_grouping<S: Into<String>>(
        self,
        from: &str,
        fields: impl IntoIterator<Item = S>,
    ) -> Self {
        let fields = fields.into_iter().map(Into::into).collect();
        self.grouping(from, DEFAULT_STREAM, Grouping::PartialKey(fields))
    }

    /// Custom grouping on the default stream of `from`.
    pub fn custom_grouping(
        self,
        from: &str,
        name: &str,
        grouping: Arc<dyn CustomGrouping>,
    ) -> Self {
        self.grouping(
            from,
            DEFAULT_STREAM,
            Grouping::Custom(name.into(), grouping),
        )
    }

    /// Sends the bolt a tick tuple every `ms` milliseconds.
    pub fn tick_interval_ms(self, ms: u64) -> Self {
        self.def.tick_interval_ms = Some(ms);
        self
    }
}
