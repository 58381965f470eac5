//! `squall notifier`: the notifier on its own.

use std::net::SocketAddr;
use std::process::ExitCode;

use squall_pipeline::topologies;

use crate::config::Config;

/// Runs the notifier topology until a signal.
pub(super) fn main(config: Config, metrics_addr: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let brokers = config.kafka.brokers.trim().to_string();
    anyhow::ensure!(
        !brokers.is_empty(),
        "--brokers (kafka.brokers) is required: the notifier reads notifications from Kafka"
    );
    let topology = topologies::notifier(&config.cluster(&brokers), &config.notifier)
        .map_err(|e| anyhow::anyhow!("notifier: {e}"))?;
    tracing::info!(%brokers, db = %config.db.url, "notifier starting");
    super::run_until_signal(topology, "notifier", None, metrics_addr, None)
}
