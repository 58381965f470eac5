//! The registry of component types that topology files pick with `type = "..."`.
//!
//! A binary registers its own types beside the built-in ones; each type deserialises its
//! options into a typed config (unknown or missing options are errors naming the option).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::bolt::{Bolt, BoltFactory};
use crate::grouping::CustomGrouping;
use crate::spout::{Spout, SpoutFactory};

/// Component options as written in a file (everything but the reserved keys `type`,
/// `parallelism`, `inputs` and `tick_interval_ms`).
pub type Options = serde_json::Map<String, serde_json::Value>;

type SpoutMaker = Arc<dyn Fn(&Options) -> Result<SpoutFactory, String> + Send + Sync>;
type BoltMaker = Arc<dyn Fn(&Options) -> Result<BoltFactory, String> + Send + Sync>;

/// Named spout types, bolt types and custom groupings.
#[derive(Clone, Default)]
pub struct Registry {
    spouts: BTreeMap<String, SpoutMaker>,
    bolts: BTreeMap<String, BoltMaker>,
    groupings: BTreeMap<String, Arc<dyn CustomGrouping>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn parse<C: DeserializeOwned>(options: &Options) -> Result<C, String> {
    serde_json::from_value(serde_json::Value::Object(options.clone())).map_err(|e| e.to_string())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers spout type `name`: options are deserialised into `C`, then `make` builds
    /// one instance per task (it is called once during validation to check the options).
    pub fn register_spout<C, S, F>(&mut self, name: &str, make: F) -> &mut Self
    where
        C: DeserializeOwned + Send + Sync + 'static,
        S: Spout,
        F: Fn(&C) -> Result<S, String> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let maker: SpoutMaker = Arc::new(move |options| {
            let config: C = parse(options)?;
            make(&config)?;
            let make = make.clone();
            let type_name = name_of::<S>();
            Ok(Arc::new(move || -> Box<dyn Spout> {
                // Validation already built one instance from the same config.
                Box::new(make(&config).unwrap_or_else(|e| panic!("{type_name}: {e}")))
            }) as SpoutFactory)
        });
        self.spouts.insert(name.to_string(), maker);
        self
    }

    /// Registers bolt type `name`, as [`register_spout`](Self::register_spout) does spouts.
    pub fn register_bolt<C, B, F>(&mut self, name: &str, make: F) -> &mut Self
    where
        C: DeserializeOwned + Send + Sync + 'static,
        B: Bolt,
        F: Fn(&C) -> Result<B, String> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let maker: BoltMaker = Arc::new(move |options| {
            let config: C = parse(options)?;
            make(&config)?;
            let make = make.clone();
            let type_name = name_of::<B>();
            Ok(Arc::new(move || -> Box<dyn Bolt> {
                Box::new(make(&config).unwrap_or_else(|e| panic!("{type_name}: {e}")))
            }) as BoltFactory)
        });
        self.bolts.insert(name.to_string(), maker);
        self
    }

    /// Registers a custom grouping under `name` (files use `grouping = "custom", custom = name`).
    pub fn register_grouping(
        &mut self,
        name: &str,
        grouping: Arc<dyn CustomGrouping>,
    ) -> &mut Self {
        self.groupings.insert(name.to_string(), grouping);
        self
    }

    /// Registered spout type names.
    pub fn spout_types(&self) -> impl Iterator<Item = &str> {
        self.spouts.keys().map(String::as_str)
    }

    /// Registered bolt type names.
    pub fn bolt_types(&self) -> impl Iterator<Item = &str> {
        self.bolts.keys().map(String::as_str)
    }

    /// Registered custom grouping names.
    pub fn grouping_names(&self) -> impl Iterator<Item = &str> {
        self.groupings.keys().map(String::as_str)
    }

    pub(crate) fn spout(&self, name: &str) -> Option<&SpoutMaker> {
        self.spouts.get(name)
    }

    pub(crate) fn bolt(&self, name: &str) -> Option<&BoltMaker> {
        self.bolts.get(name)
    }

    pub(crate) fn grouping(&self, name: &str) -> Option<&Arc<dyn CustomGrouping>> {
        self.groupings.get(name)
    }
}

fn name_of<T>() -> &'static str {
    std::any::type_name::<T>()
}
