//! Topology files (TOML or YAML), read with the `config` crate, with overrides from the
//! environment (`SQUALL__BOLTS__COUNT__PARALLELISM=4`) and the command line
//! (`--set bolts.count.parallelism=4`).
//!
//! ```toml
//! [topology]
//! name = "word-count"
//! [spouts.text]
//! type = "lines"            # factory name from the registry
//! parallelism = 1
//! path = "examples/data/words.txt"
//! [bolts.count]
//! type = "count"
//! parallelism = 2
//! field = "word"
//! inputs = [{ from = "split", grouping = "fields", fields = ["word"] }]
//! ```
//!
//! Components are keyed by id. In a component, `type`, `parallelism` (default 1),
//! `inputs` and `tick_interval_ms` are reserved; every other key is an option of the
//! component type. Precedence, lowest first: the file, the environment, `--set`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::context::ComponentKind;
use crate::def::{
    ComponentDef, ComponentSource, GroupingDef, InputDef, TopologyConfig, TopologyDef,
};
use crate::error::ValidationError;
use crate::tuple::DEFAULT_STREAM;

/// The environment variable prefix of overrides (`SQUALL__BOLTS__COUNT__PARALLELISM`).
pub const ENV_PREFIX: &str = "SQUALL";

/// A topology file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file is missing, unreadable or not valid TOML/YAML.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: config::ConfigError,
    },
    /// A `--set` argument without `=`.
    #[error("--set expects KEY=VALUE (e.g. bolts.count.parallelism=4), got \"{0}\"")]
    BadSet(String),
    /// A `--set` key the config crate rejects.
    #[error("--set {key}: {source}")]
    BadKey {
        /// The key.
        key: String,
        /// The underlying error.
        source: config::ConfigError,
    },
}

/// Where environment overrides come from.
#[derive(Clone, Debug, Default)]
pub enum EnvOverrides {
    /// The process environment (variables starting with `SQUALL__TOPOLOGY__`,
    /// `SQUALL__SPOUTS__` or `SQUALL__BOLTS__`).
    #[default]
    Process,
    /// These variables instead (tests).
    Map(HashMap<String, String>),
    /// None.
    Off,
}

/// Parses a `--set` value: JSON if it parses as JSON (numbers, booleans, arrays,
/// objects, quoted strings), else the raw string.
fn set_value(raw: &str) -> config::Value {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(json) => json_to_config(&json),
        Err(_) => config::Value::new(None, config::ValueKind::String(raw.to_string())),
    }
}

fn json_to_config(json: &serde_json::Value) -> config::Value {
    use config::ValueKind as K;
    let kind = match json {
        serde_json::Value::Null => K::Nil,
        serde_json::Value::Bool(b) => K::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => K::I64(i),
            None => K::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => K::String(s.clone()),
        serde_json::Value::Array(a) => K::Array(a.iter().map(json_to_config).collect()),
        serde_json::Value::Object(o) => K::Table(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_config(v)))
                .collect(),
        ),
    };
    config::Value::new(None, kind)
}

/// Reads topology file `path` with `sets` (`KEY=VALUE`) and environment overrides applied.
///
/// Problems inside the file's sections are not returned here: they are kept in the
/// description and reported by [`TopologyDef::validate`] together with every other one.
pub fn load_topology_file(
    path: &Path,
    sets: &[String],
    env: &EnvOverrides,
) -> Result<TopologyDef, FileError> {
    load_from(
        config::File::from(path).required(true),
        path.display().to_string(),
        sets,
        env,
    )
}

/// Like [`load_topology_file`], for a TOML document held in memory (`name` appears in
/// errors): how `squall up` runs the topology file built into the binary.
pub fn load_topology_toml(
    text: &str,
    name: &str,
    sets: &[String],
    env: &EnvOverrides,
) -> Result<TopologyDef, FileError> {
    load_from(
        config::File::from_str(text, config::FileFormat::Toml),
        name.to_string(),
        sets,
        env,
    )
}

fn load_from(
    source: impl config::Source + Send + Sync + 'static,
    display: String,
    sets: &[String],
    env: &EnvOverrides,
) -> Result<TopologyDef, FileError> {
    let mut builder = config::Config::builder().add_source(source);
    let vars: Option<config::Map<String, String>> = match env {
        EnvOverrides::Off => None,
        EnvOverrides::Process => Some(std::env::vars().collect()),
        EnvOverrides::Map(m) => Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    };
    if let Some(vars) = vars {
        let prefixes = ["TOPOLOGY", "SPOUTS", "BOLTS"].map(|s| format!("{ENV_PREFIX}__{s}__"));
        let ours: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p.as_str())))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(ours)),
        );
    }
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| FileError::BadSet(set.clone()))?;
        builder = builder
            .set_override(key.trim(), set_value(value.trim()))
            .map_err(|source| FileError::BadKey {
                key: key.to_string(),
                source,
            })?;
    }
    let read = |source| FileError::Read {
        path: display.clone(),
        source,
    };
    let json: serde_json::Value = builder
        .build()
        .map_err(read)?
        .try_deserialize()
        .map_err(read)?;
    Ok(parse_document(json))
}

/// Builds a description from a file's parsed document, keeping problems for validation.
pub fn parse_document(json: serde_json::Value) -> TopologyDef {
    let mut def = TopologyDef::default();
    let mut problems = Vec::new();
    let serde_json::Value::Object(mut top) = json else {
        problems.push(ValidationError::Topology {
            message: "the file must be a table with [topology], [spouts.*] and [bolts.*] sections"
                .into(),
        });
        def.problems = problems;
        return def;
    };

    match top.remove("topology") {
        Some(serde_json::Value::Object(mut section)) => {
            match section.remove("name") {
                Some(serde_json::Value::String(name)) if !name.is_empty() => def.name = name,
                Some(other) if !other.is_string() => problems.push(ValidationError::Topology {
                    message: format!("`name` must be a string, got {other}"),
                }),
                _ => problems.push(ValidationError::Topology {
                    message: "missing `name` in [topology]".into(),
                }),
            }
            match serde_json::from_value::<TopologyConfig>(serde_json::Value::Object(section)) {
                Ok(config) => def.config = config,
                Err(e) => problems.push(ValidationError::Topology {
                    message: format!("[topology]: {e}"),
                }),
            }
        }
        Some(_) => problems.push(ValidationError::Topology {
            message: "[topology] must be a table".into(),
        }),
        None => problems.push(ValidationError::Topology {
            message: "missing [topology] section (with at least `name`)".into(),
        }),
    }

    for (section, kind) in [
        ("spouts", ComponentKind::Spout),
        ("bolts", ComponentKind::Bolt),
    ] {
        match top.remove(section) {
            None => {}
            Some(serde_json::Value::Object(components)) => {
                for (id, body) in components {
                    match parse_component(&id, kind, body) {
                        Ok(c) => def.components.push(c),
                        Err(messages) => {
                            def.unreadable.push((id.clone(), kind));
                            for message in messages {
                                problems.push(ValidationError::Invalid {
                                    kind,
                                    component: id.clone(),
                                    message,
                                });
                            }
                        }
                    }
                }
            }
            Some(_) => problems.push(ValidationError::Topology {
                message: format!("[{section}] must be a table of components keyed by id"),
            }),
        }
    }
    for unknown in top.keys() {
        problems.push(ValidationError::Topology {
            message: format!("unknown section [{unknown}] (sections: topology, spouts, bolts)"),
        });
    }
    def.problems = problems;
    def
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FieldList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    from: String,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    grouping: Option<String>,
    #[serde(default)]
    fields: Option<FieldList>,
    #[serde(default)]
    custom: Option<String>,
}

fn parse_component(
    id: &str,
    kind: ComponentKind,
    body: serde_json::Value,
) -> Result<ComponentDef, Vec<String>> {
    let serde_json::Value::Object(mut options) = body else {
        return Err(vec![format!("must be a table of settings, got {body}")]);
    };
    let mut problems = Vec::new();
    let type_name = match options.remove("type") {
        Some(serde_json::Value::String(t)) => t,
        Some(other) => {
            problems.push(format!("`type` must be a string, got {other}"));
            String::new()
        }
        None => {
            problems.push("missing `type` (the registered component type)".into());
            String::new()
        }
    };
    let parallelism = match options.remove("parallelism") {
        None => 1,
        Some(v) => match v.as_i64() {
            Some(p) => p,
            None => {
                problems.push(format!("`parallelism` must be an integer, got {v}"));
                1
            }
        },
    };
    let tick_interval_ms = match options.remove("tick_interval_ms") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => {
                problems.push(format!(
                    "`tick_interval_ms` must be a non-negative integer, got {v}"
                ));
                None
            }
        },
    };
    let mut inputs = Vec::new();
    match options.remove("inputs") {
        None => {}
        Some(serde_json::Value::Array(list)) => {
            for (i, raw) in list.into_iter().enumerate() {
                match serde_json::from_value::<RawInput>(raw) {
                    Ok(r) => inputs.push(InputDef {
                        from: r.from,
                        stream: r.stream.unwrap_or_else(|| DEFAULT_STREAM.to_string()),
                        grouping: GroupingDef::Named {
                            name: r.grouping.unwrap_or_else(|| "shuffle".into()),
                            fields: match r.fields {
                                None => Vec::new(),
                                Some(FieldList::One(f)) => vec![f],
                                Some(FieldList::Many(f)) => f,
                            },
                            custom: r.custom,
                        },
                    }),
                    Err(e) => problems.push(format!("inputs[{i}]: {e}")),
                }
            }
        }
        Some(other) => problems.push(format!(
            "`inputs` must be a list like [{{ from = \"id\", grouping = \"shuffle\" }}], got {other}"
        )),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ComponentDef {
        id: id.to_string(),
        kind,
        parallelism,
        source: ComponentSource::Registered { type_name, options },
        inputs,
        tick_interval_ms,
    })
}
