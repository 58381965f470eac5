//! What `bench fleet` reports: percentiles per stage, the JSON report and the latency
//! plot.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::*;

/// Percentiles of one stage, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

pub(crate) fn stage_report(h: &Histogram<u64>) -> StageReport {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    StageReport {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// One measured run at one rate.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Payloads per second asked for.
    pub target_rate: f64,
    /// Payloads accepted per second over the run (posting and draining).
    pub achieved_rate: f64,
    /// Seconds from the first post to the last payload's tree completed.
    pub seconds: f64,
    /// Payloads posted.
    pub sent: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Anything else (status or transport error).
    pub errors: u64,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Every accepted payload's tree completed before the drain deadline.
    pub drained: bool,
    /// Per stage (see the module docs).
    pub stages: BTreeMap<String, StageReport>,
    /// A cluster run's CPU and database figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::ClusterFigures>,
}

impl RunReport {
    pub(crate) fn p99_complete_ms(&self) -> f64 {
        self.stages
            .get("complete")
            .map_or(f64::INFINITY, |s| s.p99_ms)
    }
}

/// What `bench fleet` writes to `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    /// Agents simulated.
    pub agents: usize,
    /// Cores of this machine.
    pub cores: usize,
    /// Broker used.
    pub broker: String,
    /// `squall up` processes posted to (0: the pipeline ran in the bench's process).
    pub processes: usize,
    /// The database (password redacted).
    pub database: String,
    /// The run at the asked rate (without `--find-max`), or each step of the ramp.
    pub runs: Vec<RunReport>,
    /// With `--find-max`: the highest rate sustained with p99 end to end within the SLA,
    /// no errors and every payload completed.
    pub max_sustained_rate: Option<f64>,
}

pub(crate) fn plot(
    path: &Path,
    title: &str,
    stages: &BTreeMap<&'static str, Histogram<u64>>,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    // x: "nines" (0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99); y: milliseconds.
    let nines = |x: f64| 1.0 - 10f64.powf(-x);
    let y_max = stages
        .values()
        .map(|h| h.value_at_quantile(0.9999) as f64 / 1000.0)
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            let p = nines(*x) * 100.0;
            format!("p{}", (p * 100.0).round() / 100.0)
        })
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()?;
    for (i, stage) in STAGES.iter().enumerate() {
        let Some(h) = stages.get(stage).filter(|h| !h.is_empty()) else {
            continue;
        };
        let color = Palette99::pick(i).to_rgba();
        let points = (0..=400).map(|j| {
            let x = j as f64 / 100.0;
            (x, h.value_at_quantile(nines(x).min(0.9999)) as f64 / 1000.0)
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(*stage)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
