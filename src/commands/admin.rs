//! `squall admin`: the admin API on its own, and `squall admin import FILE`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use squall_alerting::fixtures::Fixtures;
use squall_services::admin::{router, AdminState};

use crate::cli::AdminAction;
use crate::config::Config;

/// Serves the admin API until a signal, or imports a fixtures file.
pub(super) fn main(
    action: Option<AdminAction>,
    config: Config,
    metrics_addr: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let db = config.db.url.clone();
    if let Some(AdminAction::Import { file }) = action {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let fixtures =
            Fixtures::from_json(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let stores = squall_pipeline::stores::open(&db)
            .with_context(|| format!("opening the accounts database {db}"))?;
        let report = stores
            .accounts
            .import(&fixtures)
            .with_context(|| format!("importing {}", file.display()))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let token = config.admin.token.trim().to_string();
    if token.len() < 16 {
        anyhow::bail!("--token (admin.token) must be at least 16 characters");
    }
    let stores =
        squall_pipeline::stores::open(&db).with_context(|| format!("opening the database {db}"))?;
    let state = AdminState::new(stores, &token);
    let listen = config.admin.listen;
    let options = config
        .admin
        .tls
        .serve_options("admin.tls", config.intake.header_timeout_ms)?;
    super::serve_until_signal(listen, metrics_addr, |listener, stop| async move {
        tracing::info!(addr = %listen, %db, tls = options.tls.is_some(), "admin API listening");
        squall_services::serve::serve(listener, router(state), options, stop).await
    })
}
