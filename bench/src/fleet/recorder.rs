//! The stage histograms of `bench fleet`, fed by the `metrics` facade.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use metrics::{Counter, Gauge, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::*;

pub(crate) struct Hist(Mutex<Histogram<u64>>);

impl Hist {
    pub(crate) fn new() -> Self {
        Hist(Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        ))
    }

    pub(crate) fn record_us(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.max(1));
    }
}

impl HistogramFn for Hist {
    fn record(&self, seconds: f64) {
        self.record_us((seconds * 1e6) as u64);
    }
}

/// One histogram per stage.
pub(super) struct Stages(HashMap<&'static str, Arc<Hist>>);

impl Stages {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Stages(
            STAGES.iter().map(|s| (*s, Arc::new(Hist::new()))).collect(),
        ))
    }

    pub(crate) fn hist(&self, stage: &str) -> &Arc<Hist> {
        &self.0[stage]
    }

    /// A copy of every stage's histogram; with `reset`, they start over.
    pub(crate) fn snapshot(&self, reset: bool) -> BTreeMap<&'static str, Histogram<u64>> {
        self.0
            .iter()
            .map(|(k, h)| {
                let mut h = h.0.lock().unwrap_or_else(|e| e.into_inner());
                let copy = h.clone();
                if reset {
                    h.reset();
                }
                (*k, copy)
            })
            .collect()
    }

    pub(crate) fn count(&self, stage: &str) -> u64 {
        self.hist(stage)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// A `metrics` recorder that keeps the pipeline's latency histograms and drops the rest.
pub(crate) struct StageRecorder(pub(crate) Arc<Stages>);

impl Recorder for StageRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        let stage = match key.name() {
            squall_pipeline::stage::STAGE_LATENCY_METRIC => key
                .labels()
                .find(|l| l.key() == "stage")
                .map(|l| l.value().to_string()),
            squall_connectors::kafka::RECORD_LATENCY_METRIC => Some("complete".to_string()),
            _ => None,
        };
        match stage.and_then(|s| self.0 .0.get(s.as_str())) {
            Some(h) => metrics::Histogram::from_arc(h.clone()),
            None => metrics::Histogram::noop(),
        }
    }
}
