//! The `split` bolt: turns an enriched payload into its metric points (parsed once, by
//! `enrich`, and passed on without copying as the same [`Observation`]), counting the
//! points and the values it had to skip.
//!
//! [`Observation`]: squall_alerting::engine::Observation

use serde::Deserialize;
use squall_topology::{Bolt, BoltError, OutputCollector, OutputDeclarer, Tuple};

use crate::stage::{self, observation_of, observation_values};

/// Options of `split` (none).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {}

/// The `split` bolt (see the module docs): emits `device`, `observation` for each
/// enriched payload; counts points in `squall_split_points_total` and skipped values in
/// `squall_split_skipped_total`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Split;

impl Bolt for Split {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(stage::observation_fields());
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if t.is_tick() {
            return Ok(());
        }
        let obs = observation_of(&t)?;
        let payload = &obs.payload;
        if payload.skipped > 0 {
            metrics::counter!("squall_split_skipped_total").increment(u64::from(payload.skipped));
        }
        metrics::counter!("squall_split_points_total").increment(payload.points.len() as u64);
        out.emit(observation_values(obs));
        Ok(())
    }
}
