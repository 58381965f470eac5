//! The one validator for code-built and file-built topologies, and the validated
//! [`Topology`] it produces.
//!
//! Validation never stops at the first problem: it reports every one it finds, each naming
//! the component it concerns, so an operator fixes a file in one pass.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::bolt::{Bolt, BoltFactory};
use crate::collector::{OutputDeclarer, StreamDecl};
use crate::context::ComponentKind;
use crate::def::{ComponentSource, GroupingDef, TopologyConfig, TopologyDef};
use crate::error::{did_you_mean, list, ValidationError, ValidationErrors};
use crate::grouping::Grouping;
use crate::registry::Registry;
use crate::spout::{Spout, SpoutFactory};
use crate::tuple::intern;
use crate::tuple::Fields;

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// How instances of a validated component are made.
#[derive(Clone)]
pub enum Factory {
    /// Spout instances.
    Spout(SpoutFactory),
    /// Bolt instances.
    Bolt(BoltFactory),
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory").finish_non_exhaustive()
    }
}

/// One validated subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// The input component.
    pub from: &'static str,
    /// The input's stream.
    pub stream: &'static str,
    /// The stream's fields.
    pub fields: Fields,
    /// The grouping.
    pub grouping: Grouping,
}

/// One validated component.
#[derive(Clone)]
pub struct ComponentSpec {
    /// Unique id.
    pub id: &'static str,
    /// Spout or bolt.
    pub kind: ComponentKind,
    /// Number of tasks.
    pub parallelism: usize,
    /// The registered type, for components from the registry.
    pub type_name: Option<String>,
    /// Makes instances.
    pub factory: Factory,
    /// Declared output streams.
    pub streams: Arc<[StreamDecl]>,
    /// Subscriptions (bolts).
    pub inputs: Vec<Subscription>,
    /// Period of tick tuples, if any.
    pub tick_interval_ms: Option<u64>,
}

impl std::fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentSpec").finish_non_exhaustive()
    }
}

/// A validated topology: every input resolves, groupings fit their streams, no cycles.
/// Components are ordered spouts first, then bolts so each comes after its inputs.
#[derive(Clone)]
pub struct Topology {
    name: String,
    config: TopologyConfig,
    components: Vec<ComponentSpec>,
}

impl Topology {
    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runtime settings.
    pub fn config(&self) -> &TopologyConfig {
        &self.config
    }

    /// Runtime settings, to change before running.
    pub fn config_mut(&mut self) -> &mut TopologyConfig {
        &mut self.config
    }

    /// Components: spouts first, then bolts in dependency order.
    pub fn components(&self) -> &[ComponentSpec] {
        &self.components
    }

    /// The component with `id`.
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.id == id)
    }

    /// Total number of tasks.
    pub fn task_count(&self) -> usize {
        self.components.iter().map(|c| c.parallelism).sum()
    }

    /// Replaces the instances of spout `id` (the test harness mocks spouts this way). The
    /// replacement must declare the same streams and fields.
    pub fn replace_spout(&mut self, id: &str, factory: SpoutFactory) -> Result<(), String> {
        let spec = self
            .components
            .iter_mut()
            .find(|c| c.id == id && c.kind == ComponentKind::Spout)
            .ok_or_else(|| format!("no spout \"{id}\" in the topology"))?;
        let mut declarer = OutputDeclarer::new(id);
        factory().declare_outputs(&mut declarer);
        let same = declarer.streams().len() == spec.streams.len()
            && declarer
                .streams()
                .iter()
                .zip(spec.streams.iter())
                .all(|(a, b)| a.id == b.id && a.fields == b.fields && a.direct == b.direct);
        if !same {
            return Err(format!(
                "the replacement for spout \"{id}\" declares different streams than the original"
            ));
        }
        spec.factory = Factory::Spout(factory);
        spec.type_name = None;
        Ok(())
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "topology \"{}\": {} components, {} tasks",
            self.name,
            self.components.len(),
            self.task_count()
        )?;
        for c in &self.components {
            let ty = c.type_name.as_deref().unwrap_or("(code)");
            write!(
                f,
                "  {:<5} {:<16} x{:<3} type {}",
                c.kind, c.id, c.parallelism, ty
            )?;
            if let Some(ms) = c.tick_interval_ms {
                write!(f, ", ticks every {ms} ms")?;
            }
            writeln!(f)?;
            for s in c.streams.iter() {
                writeln!(
                    f,
                    "        emits {}{} {}",
                    s.id,
                    if s.direct { " (direct)" } else { "" },
                    s.fields
                )?;
            }
            for i in &c.inputs {
                writeln!(
                    f,
                    "        <- {}:{} grouping {}",
                    i.from, i.stream, i.grouping
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn declared_streams(id: &str, factory: &Factory) -> Result<Vec<StreamDecl>, String> {
    let mut declarer = OutputDeclarer::new(id);
    catch_unwind(AssertUnwindSafe(|| match factory {
        Factory::Spout(f) => f().declare_outputs(&mut declarer),
        Factory::Bolt(f) => {
            let b: Box<dyn Bolt> = f();
            b.declare_outputs(&mut declarer)
        }
    }))
    .map_err(|p| format!("its factory panicked: {}", panic_message(&*p)))?;
    Ok(declarer.into_streams())
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// A component's factory, declared streams and registered type name.
type Built = (Factory, Vec<StreamDecl>, Option<String>);

/// Resolves a named grouping from a file, or returns what is wrong with it.
fn resolve_grouping(def: &GroupingDef, registry: &Registry) -> Result<Grouping, String> {
    let (name, fields, custom) = match def {
        GroupingDef::Built(g) => return Ok(g.clone()),
        GroupingDef::Named {
            name,
            fields,
            custom,
        } => (name.as_str(), fields, custom),
    };
    const NAMES: [&str; 9] = [
        "shuffle",
        "fields",
        "all",
        "global",
        "direct",
        "local_or_shuffle",
        "none",
        "partial_key",
        "custom",
    ];
    let takes_fields = matches!(name, "fields" | "partial_key");
    if !takes_fields && !fields.is_empty() {
        return Err(format!("grouping \"{name}\" takes no `fields`"));
    }
    Ok(match name {
        "shuffle" => Grouping::Shuffle,
        "fields" => Grouping::Fields(fields.clone()),
        "all" => Grouping::All,
        "global" => Grouping::Global,
        "direct" => Grouping::Direct,
        "local_or_shuffle" => Grouping::LocalOrShuffle,
        "none" => Grouping::None,
        "partial_key" => Grouping::PartialKey(fields.clone()),
        "custom" => {
            let Some(custom) = custom else {
                return Err(
                    "grouping \"custom\" needs `custom = \"<registered grouping>\"`".into(),
                );
            };
            match registry.grouping(custom) {
                Some(g) => Grouping::Custom(custom.clone(), g.clone()),
                None => {
                    return Err(format!(
                        "unknown custom grouping \"{custom}\"{} (registered: {})",
                        did_you_mean(&suggest(custom, registry.grouping_names())),
                        list(
                            &registry
                                .grouping_names()
                                .map(String::from)
                                .collect::<Vec<_>>()
                        )
                    ))
                }
            }
        }
        other => {
            return Err(format!(
                "unknown grouping \"{other}\"{} (groupings: {})",
                did_you_mean(&suggest(other, NAMES)),
                NAMES.join(", ")
            ))
        }
    })
}

impl TopologyDef {
    /// Validates the description against `registry`, reporting every problem at once.
    pub fn validate(self, registry: &Registry) -> Result<Topology, ValidationErrors> {
        let mut errors = self.problems.clone();
        if self.config.queue_capacity == 0 {
            errors.push(ValidationError::Topology {
                message: "queue_capacity must be at least 1".into(),
            });
        }
        if self.config.acking && self.config.ackers == 0 {
            errors.push(ValidationError::Topology {
                message: "ackers must be at least 1 when acking is on".into(),
            });
        }
        if self.config.message_timeout_ms == 0 {
            errors.push(ValidationError::Topology {
                message: "message_timeout_ms must be at least 1".into(),
            });
        }
        if self.config.batch_size == 0 {
            errors.push(ValidationError::Topology {
                message: "batch_size must be at least 1".into(),
            });
        }

        // Duplicate ids, in first-seen order.
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for c in &self.components {
            match counts.iter_mut().find(|(id, _)| *id == c.id) {
                Some((_, n)) => *n += 1,
                None => counts.push((&c.id, 1)),
            }
        }
        for (id, n) in &counts {
            if *n > 1 {
                errors.push(ValidationError::DuplicateId {
                    component: id.to_string(),
                    count: *n,
                });
            }
        }

        let has_spout = self
            .components
            .iter()
            .any(|c| c.kind == ComponentKind::Spout)
            || self
                .unreadable
                .iter()
                .any(|(_, k)| *k == ComponentKind::Spout);
        if !has_spout {
            errors.push(ValidationError::NoSpout {
                topology: self.name.clone(),
            });
        }

        // Per component: parallelism, factory, declared streams.
        let mut built: Vec<Option<Built>> = Vec::new();
        for c in &self.components {
            if c.parallelism < 1 {
                errors.push(ValidationError::BadParallelism {
                    kind: c.kind,
                    component: c.id.clone(),
                    parallelism: c.parallelism,
                });
            }
            if c.kind == ComponentKind::Spout && !c.inputs.is_empty() {
                errors.push(ValidationError::Invalid {
                    kind: c.kind,
                    component: c.id.clone(),
                    message: "spouts take no inputs".into(),
                });
            }
            if c.kind == ComponentKind::Bolt && c.inputs.is_empty() {
                errors.push(ValidationError::Invalid {
                    kind: c.kind,
                    component: c.id.clone(),
                    message: "bolt has no inputs, so it would never receive a tuple".into(),
                });
            }
            if c.tick_interval_ms == Some(0) {
                errors.push(ValidationError::Invalid {
                    kind: c.kind,
                    component: c.id.clone(),
                    message: "tick_interval_ms must be at least 1".into(),
                });
            }
            let factory = match (&c.source, c.kind) {
                (ComponentSource::Spout(f), ComponentKind::Spout) => {
                    Ok((Factory::Spout(f.clone()), None))
                }
                (ComponentSource::Bolt(f), ComponentKind::Bolt) => {
                    Ok((Factory::Bolt(f.clone()), None))
                }
                (ComponentSource::Spout(_), ComponentKind::Bolt)
                | (ComponentSource::Bolt(_), ComponentKind::Spout) => {
                    Err(ValidationError::Invalid {
                        kind: c.kind,
                        component: c.id.clone(),
                        message: format!("its factory does not make a {}", c.kind),
                    })
                }
                (ComponentSource::Registered { type_name, options }, kind) => {
                    let made = match kind {
                        ComponentKind::Spout => registry
                            .spout(type_name)
                            .map(|m| m(options).map(Factory::Spout)),
                        ComponentKind::Bolt => registry
                            .bolt(type_name)
                            .map(|m| m(options).map(Factory::Bolt)),
                    };
                    match made {
                        None => {
                            let known: Vec<String> = match kind {
                                ComponentKind::Spout => {
                                    registry.spout_types().map(String::from).collect()
                                }
                                ComponentKind::Bolt => {
                                    registry.bolt_types().map(String::from).collect()
                                }
                            };
                            Err(ValidationError::UnknownType {
                                kind,
                                component: c.id.clone(),
                                type_name: type_name.clone(),
                                suggestion: suggest(type_name, known.iter().map(String::as_str)),
                                known,
                            })
                        }
                        Some(Err(message)) => Err(ValidationError::Invalid {
                            kind,
                            component: c.id.clone(),
                            message: format!("invalid options for type \"{type_name}\": {message}"),
                        }),
                        Some(Ok(f)) => Ok((f, Some(type_name.clone()))),
                    }
                }
            };
            match factory {
                Ok((f, type_name)) => match declared_streams(&c.id, &f) {
                    Ok(streams) => built.push(Some((f, streams, type_name))),
                    Err(message) => {
                        errors.push(ValidationError::Invalid {
                            kind: c.kind,
                            component: c.id.clone(),
                            message,
                        });
                        built.push(None);
                    }
                },
                Err(e) => {
                    errors.push(e);
                    built.push(None);
                }
            }
        }

        // Inputs: component, stream, grouping, fields.
        let index: HashMap<&str, usize> = self
            .components
            .iter()
            .enumerate()
            .rev()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let mut subscriptions: Vec<Vec<Subscription>> = vec![Vec::new(); self.components.len()];
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); self.components.len()];
        for (ci, c) in self.components.iter().enumerate() {
            if c.kind != ComponentKind::Bolt {
                continue;
            }
            for input in &c.inputs {
                let Some(&from) = index.get(input.from.as_str()) else {
                    if self.unreadable.iter().any(|(id, _)| *id == input.from) {
                        continue; // its own problems are already reported
                    }
                    errors.push(ValidationError::UnknownInput {
                        component: c.id.clone(),
                        input: input.from.clone(),
                        suggestion: suggest(
                            &input.from,
                            self.components.iter().map(|c| c.id.as_str()),
                        ),
                    });
                    continue;
                };
                edges[from].push(ci);
                let grouping = match resolve_grouping(&input.grouping, registry) {
                    Ok(g) => g,
                    Err(message) => {
                        errors.push(ValidationError::BadGrouping {
                            component: c.id.clone(),
                            input: input.from.clone(),
                            message,
                        });
                        continue;
                    }
                };
                let Some((_, streams, _)) = &built[from] else {
                    continue; // its own error is already reported
                };
                let Some(stream) = streams.iter().find(|s| s.id == input.stream) else {
                    errors.push(ValidationError::UnknownStream {
                        component: c.id.clone(),
                        input: input.from.clone(),
                        stream: input.stream.clone(),
                        declared: streams.iter().map(|s| s.id.to_string()).collect(),
                    });
                    continue;
                };
                let mut ok = true;
                if let Some(keys) = grouping.key_fields() {
                    if keys.is_empty() {
                        ok = false;
                        errors.push(ValidationError::BadGrouping {
                            component: c.id.clone(),
                            input: input.from.clone(),
                            message: format!(
                                "{} grouping needs at least one field",
                                grouping.name()
                            ),
                        });
                    }
                    for k in keys {
                        if !stream.fields.contains(k) {
                            ok = false;
                            errors.push(ValidationError::UndeclaredField {
                                component: c.id.clone(),
                                grouping: grouping.name().to_string(),
                                input: input.from.clone(),
                                stream: input.stream.clone(),
                                field: k.clone(),
                                declared: stream.fields.iter().map(String::from).collect(),
                            });
                        }
                    }
                }
                let direct = matches!(grouping, Grouping::Direct);
                if direct != stream.direct {
                    ok = false;
                    let message = if direct {
                        format!("direct grouping needs a direct stream, and \"{}\" is not declared direct", stream.id)
                    } else {
                        format!(
                            "stream \"{}\" is declared direct, so it can only be subscribed with the direct grouping",
                            stream.id
                        )
                    };
                    errors.push(ValidationError::BadGrouping {
                        component: c.id.clone(),
                        input: input.from.clone(),
                        message,
                    });
                }
                if ok {
                    subscriptions[ci].push(Subscription {
                        from: intern(&input.from),
                        stream: stream.id,
                        fields: stream.fields,
                        grouping,
                    });
                }
            }
        }

        let order = match topological_order(
            &self
                .components
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            &edges,
        ) {
            Ok(order) => order,
            Err(cycles) => {
                for path in cycles {
                    errors.push(ValidationError::Cycle { path });
                }
                Vec::new()
            }
        };

        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }

        let mut specs: Vec<Option<ComponentSpec>> = self
            .components
            .iter()
            .zip(built)
            .zip(subscriptions)
            .map(|((c, b), inputs)| {
                let (factory, streams, type_name) =
                    b.expect("no errors means every component built");
                Some(ComponentSpec {
                    id: intern(&c.id),
                    kind: c.kind,
                    parallelism: c.parallelism as usize,
                    type_name,
                    factory,
                    streams: streams.into(),
                    inputs,
                    tick_interval_ms: c.tick_interval_ms,
                })
            })
            .collect();
        // Spouts first (in the order given), then bolts in dependency order.
        let mut components: Vec<ComponentSpec> = Vec::with_capacity(specs.len());
        for (spec, def) in specs.iter_mut().zip(&self.components) {
            if def.kind == ComponentKind::Spout {
                components.extend(spec.take());
            }
        }
        for i in order {
            components.extend(specs[i].take());
        }
        let mut config = self.config;
        config.batch_size = config.batch_size.min(config.queue_capacity);
        Ok(Topology {
            name: self.name,
            config,
            components,
        })
    }
}

/// Kahn's order of `edges` (from -> to), or every cycle found (one path per cycle).
fn topological_order(ids: &[&str], edges: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<String>>> {
    let n = ids.len();
    let mut indegree = vec![0usize; n];
    for targets in edges {
        for &t in targets {
            indegree[t] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &t in edges[i].iter().rev() {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push(t);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Find cycles among the remaining nodes by DFS, each reported once.
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut cycles = Vec::new();
    let mut reported: Vec<BTreeMap<usize, ()>> = Vec::new();
    fn dfs(
        v: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[v] = 1;
        stack.push(v);
        for &t in &edges[v] {
            if state[t] == 1 {
                let start = stack.iter().position(|&x| x == t).unwrap_or(0);
                found.push(stack[start..].to_vec());
            } else if state[t] == 0 {
                dfs(t, edges, state, stack, found);
            }
        }
        stack.pop();
        state[v] = 2;
    }
    for v in 0..n {
        if state[v] == 0 && indegree[v] > 0 {
            let mut found = Vec::new();
            dfs(v, edges, &mut state, &mut Vec::new(), &mut found);
            for cycle in found {
                let key: BTreeMap<usize, ()> = cycle.iter().map(|&x| (x, ())).collect();
                if reported.contains(&key) {
                    continue;
                }
                reported.push(key);
                let mut path: Vec<String> = cycle.iter().map(|&x| ids[x].to_string()).collect();
                path.push(ids[cycle[0]].to_string());
                cycles.push(path);
            }
        }
    }
    Err(cycles)
}

// Compile-time check that factories stay object-safe and shareable.
#[allow(dead_code)]
fn _assert_traits(_: &dyn Spout, _: &dyn Bolt) {}
