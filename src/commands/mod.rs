//! What each command does, and what they share: the tokio runtime, signals, the metrics
//! endpoint, the embedded broker.

mod admin;
mod bench;
mod dead_letters;
mod intake;
mod notifier;
mod rules;
mod run;
pub mod up;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use squall_connectors::kafka::{EmbeddedBroker, GroupTimeouts};
use squall_runtime::RunningTopology;
use squall_topology::Topology;

use crate::cli::{Cli, Command, ServiceArgs};
use crate::config::Config;

/// Runs the command line.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { file, sets } => run::validate(&file, &sets),
        Command::Run {
            file,
            sets,
            metrics_addr,
            workers,
            ui_addr,
        } => run::run(&file, &sets, metrics_addr, workers, ui_addr),
        Command::Up {
            service,
            data_dir,
            services,
        } => {
            let mut flags = Vec::new();
            if let Some(d) = data_dir {
                flags.push(("data_dir", d.display().to_string()));
            }
            let services = up::Services::parse(&services)?;
            up::main(load(&service, &flags)?, services, service.metrics_addr)
        }
        Command::Intake {
            service,
            listen,
            brokers,
            topic,
            domain,
            max_body_bytes,
            max_payload_bytes,
            produce_timeout_ms,
        } => {
            let flags = flags([
                ("intake.listen", listen.map(|v| v.to_string())),
                ("kafka.brokers", brokers),
                ("intake.topic", topic),
                ("intake.domain", domain),
                (
                    "intake.max_body_bytes",
                    max_body_bytes.map(|v| v.to_string()),
                ),
                (
                    "intake.max_payload_bytes",
                    max_payload_bytes.map(|v| v.to_string()),
                ),
                (
                    "intake.produce_timeout_ms",
                    produce_timeout_ms.map(|v| v.to_string()),
                ),
            ]);
            intake::main(
                load_with(&service, &flags, &["intake.", "kafka."])?,
                service.metrics_addr,
            )
        }
        Command::Notifier {
            service,
            brokers,
            db,
            max_age_s,
            initial_backoff_ms,
            max_backoff_ms,
            parallelism,
            prefix,
        } => {
            let flags = flags([
                ("kafka.brokers", brokers),
                ("db.url", db),
                ("notifier.max_age_s", max_age_s.map(|v| v.to_string())),
                (
                    "notifier.initial_backoff_ms",
                    initial_backoff_ms.map(|v| v.to_string()),
                ),
                (
                    "notifier.max_backoff_ms",
                    max_backoff_ms.map(|v| v.to_string()),
                ),
                ("notifier.parallelism", parallelism.map(|v| v.to_string())),
                ("kafka.prefix", prefix),
            ]);
            notifier::main(
                load_with(&service, &flags, &["kafka.", "db."])?,
                service.metrics_addr,
            )
        }
        Command::Admin {
            action,
            service,
            listen,
            db,
            token,
        } => {
            let flags = flags([
                ("admin.listen", listen.map(|v| v.to_string())),
                ("db.url", db),
                ("admin.token", token),
            ]);
            admin::main(
                action,
                load_with(&service, &flags, &["admin.", "db."])?,
                service.metrics_addr,
            )
        }
        Command::Bench { what } => bench::main(what),
        Command::Rules { action } => rules::main(action),
        Command::Broker {
            prefix,
            partitions,
            session_timeout_ms,
        } => memory_broker(&prefix, partitions, session_timeout_ms),
        Command::DeadLetters {
            action,
            service,
            admin,
            data_dir,
        } => {
            let flags = flags([("data_dir", data_dir.map(|d| d.display().to_string()))]);
            dead_letters::main(action, admin, load(&service, &flags)?)
        }
    }
}

/// The flags that were given, as configuration overrides.
fn flags<const N: usize>(
    given: [(&'static str, Option<String>); N],
) -> Vec<(&'static str, String)> {
    given
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// The environment variables the service commands read before the one configuration
/// (`SQUALL__SECTION__KEY`) existed, and the key each now names. Still honoured, below the
/// flags, with a warning.
const LEGACY_ENV: [(&str, &str); 10] = [
    ("SQUALL_DB_URL", "db.url"),
    ("SQUALL_ADMIN_TOKEN", "admin.token"),
    ("SQUALL_ADMIN_LISTEN", "admin.listen"),
    ("SQUALL_KAFKA_BROKERS", "kafka.brokers"),
    ("SQUALL_INTAKE_LISTEN", "intake.listen"),
    ("SQUALL_INTAKE_TOPIC", "intake.topic"),
    ("SQUALL_INTAKE_DOMAIN", "intake.domain"),
    ("SQUALL_INTAKE_MAX_BODY_BYTES", "intake.max_body_bytes"),
    (
        "SQUALL_INTAKE_MAX_PAYLOAD_BYTES",
        "intake.max_payload_bytes",
    ),
    (
        "SQUALL_INTAKE_PRODUCE_TIMEOUT_MS",
        "intake.produce_timeout_ms",
    ),
];

/// Loads the configuration with `flags` on top; for `intake`, `notifier` and `admin`
/// (`legacy`), the old variables of [`LEGACY_ENV`] that name keys of theirs too.
fn load_with(
    service: &ServiceArgs,
    flags: &[(&'static str, String)],
    legacy: &[&str],
) -> anyhow::Result<Config> {
    let mut all: Vec<(&str, String)> = Vec::new();
    for (var, key) in LEGACY_ENV {
        if !legacy.iter().any(|section| key.starts_with(section)) {
            continue;
        }
        if let Ok(value) = std::env::var(var) {
            let new = format!("SQUALL__{}", key.replace('.', "__").to_uppercase());
            tracing::warn!(variable = var, instead = %new, "deprecated variable; still read");
            all.push((key, value));
        }
    }
    all.extend(flags.iter().cloned());
    Config::load(service.config.as_deref(), std::env::vars(), &all)
}

fn load(service: &ServiceArgs, flags: &[(&'static str, String)]) -> anyhow::Result<Config> {
    load_with(service, flags, &[])
}

/// Registers SIGINT (Ctrl-C) and SIGTERM handlers now, so a signal that arrives before
/// the returned future is first polled is not lost (nor fatal), and resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Bucket bounds (seconds) of every latency histogram (`*_seconds`): served as
/// Prometheus histograms, not summaries, so a cluster's processes can be added up
/// (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[1m])))`); fine around the
/// 150 ms SLA.
pub(crate) const LATENCY_BUCKETS: [f64; 20] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 5.0, 30.0,
];

fn install_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .context("latency buckets")?
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    Ok(())
}

/// The broker to use: `named` when it is not empty, else the embedded one (returned too:
/// it lives as long as the caller keeps it) with `topics` created: the durable journal in
/// `journal` (with its backlog bound) when given, else the in-memory cluster.
fn broker(
    named: &str,
    journal: Option<(&std::path::Path, u64)>,
    topics: &[&str],
    partitions: i32,
) -> anyhow::Result<(Option<EmbeddedBroker>, String)> {
    if !named.trim().is_empty() {
        return Ok((None, named.trim().to_string()));
    }
    let embedded = match journal {
        Some((dir, max_backlog_bytes)) => EmbeddedBroker::durable(
            dir,
            squall_connectors::journal::JournalOptions {
                max_backlog_bytes,
                ..Default::default()
            },
            topics,
            partitions,
        )?,
        None => EmbeddedBroker::memory(topics, partitions)?,
    };
    let brokers = embedded.bootstrap_servers();
    Ok((Some(embedded), brokers))
}

/// `squall broker`: the in-memory cluster with the topics of `prefix`, until a signal.
fn memory_broker(
    prefix: &str,
    partitions: i32,
    session_timeout_ms: u64,
) -> anyhow::Result<ExitCode> {
    if partitions < 1 {
        anyhow::bail!("--partitions must be at least 1");
    }
    if !(1_000..=3_600_000).contains(&session_timeout_ms) {
        anyhow::bail!("--session-timeout-ms must be between 1000 and 3600000");
    }
    let names = squall_pipeline::topologies::Names::new(prefix);
    let broker = EmbeddedBroker::memory_with(
        &names.topics(),
        partitions,
        Some(GroupTimeouts::with_session_timeout(session_timeout_ms)),
    )?;
    println!("KAFKA_BROKERS={}", broker.bootstrap_servers());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let rt = runtime(Some(1))?;
    rt.block_on(async {
        shutdown_signal()?.await;
        anyhow::Ok(())
    })?;
    drop(broker);
    Ok(ExitCode::SUCCESS)
}

/// Binds `listen`, then runs `serve` with the listener and a future that resolves on
/// SIGINT or SIGTERM, on a new runtime, with the metrics endpoint if asked.
fn serve_until_signal<F, Fut>(
    listen: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    serve: F,
) -> anyhow::Result<ExitCode>
where
    F: FnOnce(
        tokio::net::TcpListener,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    runtime(None)?.block_on(async move {
        install_metrics(metrics_addr)?;
        let stop = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        serve(listener, Box::pin(stop)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// A multi-threaded runtime with `workers` threads (default: one per core).
fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = workers {
        rt.worker_threads(w.max(1));
    }
    rt.enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs `topology` until its spouts are exhausted or a signal asks it to drain (`what`
/// names it in the log); prints its report.
/// Serves the web UI's topology pages for `live` on `addr` (for as long as the process
/// runs) and prints a link that signs in.
async fn serve_ui(
    addr: SocketAddr,
    topology: &Topology,
    live: squall_runtime::LiveStats,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let token = match std::env::var("SQUALL_UI_TOKEN") {
        Ok(t) if t.len() >= 16 => t,
        Ok(_) => anyhow::bail!("SQUALL_UI_TOKEN must be at least 16 characters"),
        Err(_) => {
            use rand::Rng;
            rand::thread_rng()
                .sample_iter(rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        }
    };
    let ui = squall_services::ui::UiState::new(&token, None, false);
    ui.add_topology(squall_services::ui::TopologyView::new(topology, live));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--ui-addr: listening on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = squall_services::ui::router(ui);
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) =
            squall_services::serve::serve(listener, app, Default::default(), forever).await
        {
            tracing::error!(error = %e, "the web UI stopped");
        }
    });
    println!("web UI  http://{bound}/ui/?token={token}   (signs in)");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(())
}

fn run_until_signal(
    topology: Topology,
    what: &'static str,
    workers: Option<usize>,
    metrics_addr: Option<SocketAddr>,
    ui_addr: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    runtime(workers)?.block_on(async move {
        install_metrics(metrics_addr)?;
        let signal = shutdown_signal()?;
        let shape = ui_addr.map(|_| topology.clone());
        let running = RunningTopology::start(topology)?;
        tracing::info!("{what} running");
        if let (Some(addr), Some(shape)) = (ui_addr, shape) {
            serve_ui(addr, &shape, running.live()).await?;
        }
        let stop = running.shutdown_handle();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("signal: {what} draining in-flight tuples");
            stop.shutdown();
        });
        let report = running.join().await;
        print!("{report}");
        Ok(ExitCode::SUCCESS)
    })
}
