//! `squall intake`: the intake on its own (for an intake tier apart from processing).

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::Config;

/// Serves the intake until a signal.
pub(super) fn main(config: Config, metrics_addr: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let brokers = config.kafka.brokers.trim().to_string();
    anyhow::ensure!(
        !brokers.is_empty(),
        "--brokers (kafka.brokers) is required: the intake queues payloads on Kafka"
    );
    let listen = config.intake.listen;
    let intake = config.intake(&brokers);
    let options = config
        .intake
        .tls
        .serve_options("intake.tls", config.intake.header_timeout_ms)?;
    super::serve_until_signal(listen, metrics_addr, |listener, stop| async move {
        squall_services::intake::serve_with(intake, listener, options, async move {
            stop.await;
            tracing::info!("signal: intake stopping");
        })
        .await
    })
}
