//! `squall up`: the whole alert pipeline in one process on embedded defaults.
//!
//! It starts, in order: the embedded broker when `kafka.brokers` is empty (by default
//! the durable journal under `DATA_DIR/journal`; `kafka.embedded = "memory"` for
//! librdkafka's in-memory cluster), the topics it needs,
//! the database under `data_dir`, the admin API, the intake, the alert topology and the
//! notifier. It prints where each service listens, and on Ctrl-C or SIGTERM stops the
//! intake and the admin API first, then lets the topologies drain.

use anyhow::Context;
use squall_connectors::kafka::ensure_topics;
use squall_pipeline::topologies;
use squall_runtime::RunningTopology;

use crate::config::Config;

/// The admin token: `admin.token`, else the one kept in `DATA_DIR/admin-token`, else a new
/// one (kept there for the next start).
fn admin_token(config: &Config) -> anyhow::Result<String> {
    let given = config.admin.token.trim();
    if !given.is_empty() {
        if given.len() < 16 {
            anyhow::bail!("admin.token must be at least 16 characters");
        }
        return Ok(given.to_string());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if t.trim().len() >= 16 {
            return Ok(t.trim().to_string());
        }
    }
    let token: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
            .collect()
    };
    // Readable by its owner only: it opens the admin API.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(token.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(token)
}

/// Which parts of squall a process runs (`squall up --services intake,admin,...`): all of
/// them by default; an operator may run the intake tier apart from the processing tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services {
    /// The HTTP intake agents post to.
    pub intake: bool,
    /// The admin API.
    pub admin: bool,
    /// The alert topology.
    pub topology: bool,
    /// The notifier topology.
    pub notifier: bool,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            intake: true,
            admin: true,
            topology: true,
            notifier: true,
        }
    }
}

impl Services {
    /// Reads `intake,admin,topology,notifier` (any non-empty subset).
    pub fn parse(list: &[String]) -> anyhow::Result<Self> {
        if list.is_empty() {
            return Ok(Services::default());
        }
        let mut s = Services {
            intake: false,
            admin: false,
            topology: false,
            notifier: false,
        };
        for name in list.iter().flat_map(|l| l.split(',')).map(str::trim) {
            match name {
                "intake" => s.intake = true,
                "admin" => s.admin = true,
                "topology" => s.topology = true,
                "notifier" => s.notifier = true,
                "" => {}
                other => anyhow::bail!(
                    "--services: unknown service \"{other}\" (known: intake, admin, topology, notifier)"
                ),
            }
        }
        if s == (Services {
            intake: false,
            admin: false,
            topology: false,
            notifier: false,
        }) {
            anyhow::bail!("--services: name at least one of intake, admin, topology, notifier");
        }
        Ok(s)
    }
}

/// Runs the selected services until `stop` resolves. `brokers` is the broker to use (the
/// caller starts the embedded one when the configuration names none, and creates its
/// topics: then `create_topics` is false).
pub async fn run(
    config: Config,
    services: Services,
    brokers: String,
    create_topics: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let token = admin_token(&config)?;
    let db = config.db.url.clone();
    let names = config.names();
    if create_topics {
        ensure_topics(&brokers, &names.topics(), config.kafka.partitions).await?;
    }

    // Opened (and migrated) before anything serves, whichever services run.
    let stores = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            squall_pipeline::stores::open(&db)
                .with_context(|| format!("opening {}", squall_pipeline::stores::redact(&db)))
        })
        .await??
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut lines = vec!["squall is up".to_string()];
    let mut servers = Vec::new();
    let mut ui: Option<squall_services::ui::UiState> = None;
    if services.admin {
        let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("admin: listening on {}", config.admin.listen))?;
        let admin_addr = admin_listener.local_addr()?;
        let options = config
            .admin
            .tls
            .serve_options("admin.tls", config.intake.header_timeout_ms)?;
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let sources = squall_services::ui::AlertSources {
            accounts: stores.accounts.clone(),
            alerts: stores.alerts.clone(),
            deliveries: stores.deliveries.clone(),
        };
        let ui_state =
            squall_services::ui::UiState::new(token.as_str(), Some(sources), options.tls.is_some());
        ui = Some(ui_state.clone());
        let admin = squall_services::admin::router(
            squall_services::admin::AdminState::new(stores, token.as_str())
                .with_dead_letters(&brokers, &names.dead_letter),
        )
        .merge(squall_services::ui::router(ui_state));
        let admin_stopped = stopped();
        servers.push(tokio::spawn(async move {
            squall_services::serve::serve(admin_listener, admin, options, admin_stopped).await
        }));
        lines.push(format!(
            "  admin API  {scheme}://{admin_addr}/api/v1/   (Authorization: Bearer {token})"
        ));
        lines.push(format!(
            "  web UI     {scheme}://{admin_addr}/ui/?token={token}   (signs in; or sign in with the token at /ui/login)"
        ));
    }
    if services.intake {
        let intake_listener = tokio::net::TcpListener::bind(config.intake.listen)
            .await
            .with_context(|| format!("intake: listening on {}", config.intake.listen))?;
        let intake_addr = intake_listener.local_addr()?;
        let intake_config = config.intake(&brokers);
        let intake_stopped = stopped();
        let options = config
            .intake
            .tls
            .serve_options("intake.tls", config.intake.header_timeout_ms)?;
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        servers.push(tokio::spawn(async move {
            squall_services::intake::serve_with(
                intake_config,
                intake_listener,
                options,
                intake_stopped,
            )
            .await
        }));
        // The intake first: tests and tools read the lines in this order.
        lines.insert(
            1,
            format!("  intake     {scheme}://{intake_addr}/intake/   (agents post here)"),
        );
    }

    let cluster = config.cluster(&brokers);
    let mut topologies = Vec::new();
    let mut start =
        |label: &'static str, topology: squall_topology::Topology| -> anyhow::Result<()> {
            let view_of = ui.as_ref().map(|_| topology.clone());
            let running = RunningTopology::start(topology)?;
            if let (Some(ui), Some(t)) = (&ui, view_of) {
                ui.add_topology(squall_services::ui::TopologyView::new(&t, running.live()));
            }
            topologies.push((label, running));
            Ok(())
        };
    if services.topology {
        start(
            "alerting topology",
            topologies::alerting(&cluster, &config.alerting)?,
        )?;
    }
    if services.notifier {
        start(
            "notifier",
            topologies::notifier(&cluster, &config.notifier)?,
        )?;
    }

    lines.push(format!("  kafka      {brokers}"));
    lines.push(format!(
        "  database   {}",
        squall_pipeline::stores::redact(&db)
    ));
    let names: Vec<&str> = [
        (services.topology, "alerting"),
        (services.notifier, "notifier"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect();
    if !names.is_empty() {
        lines.push(format!("  topology   {}", names.join(", ")));
    }
    for line in lines {
        println!("{line}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    stop.await;
    tracing::info!("stopping: intake and admin first, then the topologies drain");
    let _ = stop_tx.send(true);
    for server in servers {
        let _ = server.await;
    }
    for (name, topology) in topologies {
        let report = topology.shutdown_and_join().await;
        tracing::info!("{name} stopped:\n{report}");
    }
    Ok(())
}

/// `squall up` until a signal.
pub(super) fn main(
    config: Config,
    services: Services,
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<std::process::ExitCode> {
    // The embedded broker lives on this thread for as long as the process runs.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let journal = config.journal_dir();
    let (embedded, brokers) = super::broker(
        &config.kafka.brokers,
        (config.kafka.embedded == crate::config::EmbeddedKind::Durable)
            .then_some((&*journal, config.kafka.journal_max_backlog_mb << 20)),
        &config.names().topics(),
        config.kafka.partitions,
    )?;
    let create_topics = embedded.is_none();
    let rt = super::runtime(None)?;
    rt.block_on(async move {
        super::install_metrics(metrics_addr)?;
        let stop = super::shutdown_signal()?;
        run(config, services, brokers, create_topics, stop).await
    })?;
    drop(rt);
    drop(embedded);
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_any_named_subset_and_unknown_names_are_refused() {
        let all = Services::parse(&[]).unwrap();
        assert_eq!(all, Services::default());
        let intake = Services::parse(&["intake,admin".into()]).unwrap();
        assert!(intake.intake && intake.admin && !intake.topology && !intake.notifier);
        let processing = Services::parse(&["topology".into(), "notifier".into()]).unwrap();
        assert!(!processing.intake && processing.topology && processing.notifier);
        let e = Services::parse(&["intake,web".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown service \"web\""), "{e}");
        assert!(Services::parse(&[",".into()]).is_err());
    }

    #[test]
    fn a_generated_admin_token_is_kept_readable_by_its_owner_only_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let token = admin_token(&config).unwrap();
        assert_eq!(token.len(), 32);
        let file = dir.path().join("admin-token");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        assert_eq!(
            admin_token(&config).unwrap(),
            token,
            "reused on the next start"
        );
        config.admin.token = "too-short".into();
        assert!(admin_token(&config).is_err());
    }
}
