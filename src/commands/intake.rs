//! `squall intake`: the intake on its own (for an intake tier apart from processing).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

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
    super::runtime(None)?.block_on(async move {
        super::install_metrics(metrics_addr)?;
        let stop = super::shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        squall_services::intake::serve(intake, listener, async move {
            stop.await;
            tracing::info!("signal: intake stopping");
        })
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
