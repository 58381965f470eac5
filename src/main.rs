//! The `squall` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use squall::topology::{load_topology_file, EnvOverrides, Topology};
use squall_runtime::RunningTopology;

/// mimalloc: the pipeline allocates per payload on several threads at once (parsed points,
/// tuples, database rows), where glibc's malloc spent a sixth of the CPU in its own locks
/// and free-list upkeep.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "squall",
    version,
    about = "Storm-style stream-processing topologies in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology file: print the resolved graph, or every problem (exit code 2).
    Validate {
        /// The topology file (TOML or YAML).
        file: PathBuf,
        /// Override a value, e.g. `--set bolts.count.parallelism=4` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Run a topology file until its spouts are exhausted or Ctrl-C, then print
    /// per-component counts.
    Run {
        /// The topology file (TOML or YAML).
        file: PathBuf,
        /// Override a value, e.g. `--set bolts.count.parallelism=4` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9100.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
        /// Worker threads of the runtime (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Serve the admin API (`/api/v1`: accounts, agent keys, devices, alert configs,
    /// alerts, metrics), or `admin import FILE`.
    Admin {
        /// What to do instead of serving.
        #[command(subcommand)]
        action: Option<AdminAction>,
        /// Address to listen on.
        #[arg(long, env = "SQUALL_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// The accounts database, `sqlite://PATH`.
        #[arg(
            long,
            env = "SQUALL_DB_URL",
            default_value = "sqlite://squall.db",
            global = true
        )]
        db: String,
        /// The bearer token every call must carry (required to serve).
        #[arg(long, env = "SQUALL_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Run the whole alert pipeline in one process: broker (embedded unless
    /// `kafka.brokers` is set), database, intake, admin API, alert topology, notifier.
    Up {
        /// The configuration file (default: `squall.toml` if present). Every key can be
        /// overridden as `SQUALL__SECTION__KEY`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve Prometheus metrics on this address.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
    /// Deliver the notifications queued on `squall.notifications` (webhook, Slack,
    /// PagerDuty), with retries; each id is delivered at most once.
    Notifier {
        /// Kafka bootstrap servers.
        #[arg(long, env = "SQUALL_KAFKA_BROKERS")]
        brokers: String,
        /// The database delivery outcomes are recorded in, `sqlite://PATH`.
        #[arg(long, env = "SQUALL_DB_URL", default_value = "sqlite://squall.db")]
        db: String,
        /// Notifications older than this many seconds are archived, not sent.
        #[arg(long, default_value_t = 3600)]
        max_age_s: u64,
        /// First retry delay (doubles per attempt, with jitter).
        #[arg(long, default_value_t = 500)]
        initial_backoff_ms: u64,
        /// Longest retry delay.
        #[arg(long, default_value_t = 60_000)]
        max_backoff_ms: u64,
        /// Delivery tasks.
        #[arg(long, default_value_t = 2)]
        parallelism: i64,
        /// Prefix of the topic (`PREFIXnotifications`) and consumer group names.
        #[arg(long, default_value = "squall.")]
        prefix: String,
        /// Serve Prometheus metrics on this address.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
    /// Benchmarks of the alert pipeline.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Serve the intake agents post their payloads to (`POST /intake/`, `POST /postback/`),
    /// queueing them on Kafka.
    Intake {
        /// Address to listen on.
        #[arg(long, env = "SQUALL_INTAKE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Kafka bootstrap servers.
        #[arg(long, env = "SQUALL_KAFKA_BROKERS")]
        brokers: String,
        /// The topic payload envelopes are produced to.
        #[arg(long, env = "SQUALL_INTAKE_TOPIC", default_value = "squall.payloads")]
        topic: String,
        /// Agents post to `<account>.agent.<domain>`.
        #[arg(long, env = "SQUALL_INTAKE_DOMAIN", default_value = "example.com")]
        domain: String,
        /// Largest request body, in bytes.
        #[arg(long, env = "SQUALL_INTAKE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
        /// Largest decompressed payload, in bytes.
        #[arg(long, env = "SQUALL_INTAKE_MAX_PAYLOAD_BYTES", default_value_t = 8 << 20)]
        max_payload_bytes: usize,
        /// How long the broker may take to acknowledge a payload before agents get 503.
        #[arg(
            long,
            env = "SQUALL_INTAKE_PRODUCE_TIMEOUT_MS",
            default_value_t = 5_000
        )]
        produce_timeout_ms: u64,
        /// Serve Prometheus metrics on this address.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Push a file of raw v2 payloads through the alert topology (enrich, split, store,
    /// threshold, notify; no HTTP, no broker) as fast as it goes; print one JSON line.
    Pipeline {
        /// One payload per line, as the agent sends it before compression.
        #[arg(long)]
        payloads: PathBuf,
        /// Accounts, agent keys and alert configs (as `squall admin import` takes).
        #[arg(long)]
        fixtures: PathBuf,
        /// The account the payloads belong to (default: the fixtures' only account).
        #[arg(long)]
        account: Option<String>,
        /// Where the benchmark's database goes (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// A simulated fleet of agents posting real-format v2 payloads (zlib, Content-MD5)
    /// over HTTP to an intake, through Kafka and the alert topology, all in this process;
    /// prints per-stage latency percentiles, writes `report.json` and `latency.svg`.
    Fleet {
        /// Kafka bootstrap servers (default: an embedded mock broker).
        #[arg(long, env = "SQUALL_KAFKA_BROKERS")]
        brokers: Option<String>,
        #[command(flatten)]
        options: squall::fleet::FleetOptions,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Tuples/s through a Python bolt (pystorm, through the multi-lang `shell` bolt) and
    /// through the same pass-through bolt in Rust; one JSON line per run.
    Multilang {
        /// The Python with pystorm (default: $SQUALL_PYTHON, else python3).
        #[arg(long, env = "SQUALL_PYTHON", default_value = "python3")]
        python: String,
        /// Tuples per run (acking on).
        #[arg(long, default_value_t = 100_000)]
        tuples: u64,
        /// Tasks of the bolt (child processes for Python); repeatable for several runs.
        #[arg(long = "parallelism", default_values_t = [1usize, 2])]
        parallelism: Vec<usize>,
        /// Tuples handed to a child and not yet acked by it (the `shell` bolt's
        /// `max_pending`).
        #[arg(long, default_value_t = 100)]
        max_pending: usize,
        /// The multi-lang codec (msgpack needs the Python `msgpack` package).
        #[arg(long, default_value = "json", value_parser = ["json", "msgpack"])]
        serializer: String,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Write `payloads.ndjson` and `fixtures.json` for `bench pipeline`.
    Generate {
        /// Devices (one agent key each).
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        /// Payloads per device, a minute apart.
        #[arg(long, default_value_t = 5)]
        per_device: usize,
        /// Threshold configs per device.
        #[arg(long, default_value_t = 5)]
        rules: usize,
        /// The real v2 payload to vary (default: the real v2 agent payload built into
        /// squall, `tests/fixtures/payloads/sd-agent-v2.json`).
        #[arg(long)]
        template: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Load accounts, agent keys and alert configs from a fixtures file
    /// (`{"accounts": [...], "alerts": [...]}`), in one transaction; importing again
    /// changes nothing. Prints what was done as JSON.
    Import {
        /// The fixtures file.
        file: PathBuf,
    },
}

/// Loads and validates a file; `Ok(Err(text))` carries every validation problem.
fn load(file: &Path, sets: &[String]) -> anyhow::Result<Result<Topology, String>> {
    let def = load_topology_file(file, sets, &EnvOverrides::Process)?;
    Ok(def.validate(&squall::registry()).map_err(|e| e.to_string()))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn install_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    Ok(())
}

/// The broker to use: `named` when it is not empty, else an embedded mock cluster (returned
/// too: it lives as long as the caller keeps it) with the topics of `names` created.
fn broker(
    named: &str,
    names: &squall::up::Names,
    partitions: i32,
) -> anyhow::Result<(
    Option<rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    String,
)> {
    if !named.trim().is_empty() {
        return Ok((None, named.trim().to_string()));
    }
    let cluster =
        rdkafka::mocking::MockCluster::new(1).context("starting the embedded Kafka broker")?;
    for t in names.topics() {
        cluster
            .create_topic(t, partitions, 1)
            .with_context(|| format!("creating topic {t}"))?;
    }
    let brokers = cluster.bootstrap_servers();
    Ok((Some(cluster), brokers))
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
fn run_until_signal(
    topology: Topology,
    what: &'static str,
    workers: Option<usize>,
    metrics_addr: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    runtime(workers)?.block_on(async move {
        install_metrics(metrics_addr)?;
        let signal = shutdown_signal()?;
        let running = RunningTopology::start(topology)?;
        tracing::info!("{what} running");
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up {
            config,
            metrics_addr,
        } => {
            let config = squall::up::UpConfig::load(config.as_deref(), std::env::vars())?;
            // The embedded broker lives on this thread for as long as the process runs.
            let (mock, brokers) = broker(
                &config.kafka.brokers,
                &squall::up::Names::new(&config.kafka.prefix),
                config.kafka.partitions,
            )?;
            let create_topics = mock.is_none();
            let rt = runtime(None)?;
            rt.block_on(async move {
                install_metrics(metrics_addr)?;
                let stop = shutdown_signal()?;
                squall::up::run(config, brokers, create_topics, stop).await
            })?;
            drop(rt);
            drop(mock);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                BenchCommand::Generate {
                    devices,
                    per_device,
                    rules,
                    template,
                    out,
                },
        } => {
            squall::bench::generate(template.as_deref(), devices, per_device, rules, &out)?;
            eprintln!(
                "wrote {} payloads and {} configs to {}",
                devices * per_device,
                devices * rules,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                BenchCommand::Pipeline {
                    payloads,
                    fixtures,
                    account,
                    dir,
                    workers,
                },
        } => {
            let (dir, temporary) = match dir {
                Some(d) => (d, false),
                None => (
                    std::env::temp_dir().join(format!("squall-bench-{}", std::process::id())),
                    true,
                ),
            };
            let result = runtime(workers)?.block_on(squall::bench::pipeline(
                &payloads,
                &fixtures,
                account.as_deref(),
                &dir,
            ));
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            println!("{}", serde_json::to_string(&result?)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                BenchCommand::Multilang {
                    python,
                    tuples,
                    parallelism,
                    max_pending,
                    serializer,
                    workers,
                },
        } => {
            if tuples == 0 || max_pending == 0 || parallelism.contains(&0) {
                eprintln!("--tuples, --max-pending and --parallelism must be at least 1");
                return Ok(ExitCode::from(2));
            }
            let rt = runtime(workers)?;
            for &p in &parallelism {
                for bolt in [None, Some(python.as_str())] {
                    let report = rt.block_on(squall::bench::multilang(
                        bolt,
                        &serializer,
                        tuples,
                        p,
                        max_pending,
                    ))?;
                    println!("{}", serde_json::to_string(&report)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                BenchCommand::Fleet {
                    brokers,
                    options,
                    workers,
                },
        } => {
            let prefix = squall::fleet::fresh_prefix();
            // The embedded broker, when none is named, lives on this thread.
            let (mock, brokers) = broker(
                brokers.as_deref().unwrap_or_default(),
                &squall::up::Names::new(&prefix),
                options.partitions,
            )?;
            let dir = tempfile::tempdir().context("creating the benchmark's directory")?;
            let out = options.out.clone();
            let rt = runtime(workers)?;
            let report = rt.block_on(squall::fleet::fleet(
                options,
                brokers,
                &prefix,
                mock.is_none(),
                dir.path(),
            ))?;
            drop(rt);
            drop(mock);
            if let Some(max) = report.max_sustained_rate {
                println!("max sustained rate: {max:.0} payloads/s");
            }
            println!("report: {}", out.join("report.json").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Notifier {
            brokers,
            db,
            max_age_s,
            initial_backoff_ms,
            max_backoff_ms,
            parallelism,
            prefix,
            metrics_addr,
        } => {
            let section = squall::up::NotifierSection {
                max_age_s,
                initial_backoff_ms,
                max_backoff_ms,
                parallelism,
                ..Default::default()
            };
            let topology = squall::up::notifier_topology(
                &brokers,
                &db,
                &squall::up::Names::new(&prefix),
                &squall::up::consumer_options(
                    10_000,
                    squall::up::KafkaSection::default().fetch_wait_max_ms,
                ),
                &section,
            )?;
            tracing::info!(%brokers, %db, "notifier starting");
            run_until_signal(topology, "notifier", None, metrics_addr)
        }
        Command::Admin {
            action: Some(AdminAction::Import { file }),
            db,
            ..
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let fixtures = squall_alerting::fixtures::Fixtures::from_json(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let stores = squall_pipeline::stores::open(&db)
                .with_context(|| format!("opening the accounts database {db}"))?;
            let report = stores
                .accounts
                .import(&fixtures)
                .with_context(|| format!("importing {}", file.display()))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            action: None,
            listen,
            db,
            token,
        } => {
            let token = token.unwrap_or_default();
            if token.trim().len() < 16 {
                anyhow::bail!("--token (SQUALL_ADMIN_TOKEN) must be at least 16 characters");
            }
            let stores = squall_pipeline::stores::open(&db)
                .with_context(|| format!("opening the database {db}"))?;
            let state = squall::admin::AdminState::new(stores, token.trim());
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async move {
                let stop = shutdown_signal()?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                tracing::info!(addr = %listen, %db, "admin API listening");
                axum::serve(listener, squall::admin::router(state))
                    .with_graceful_shutdown(stop)
                    .await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Intake {
            listen,
            brokers,
            topic,
            domain,
            max_body_bytes,
            max_payload_bytes,
            produce_timeout_ms,
            metrics_addr,
        } => {
            let config = squall::intake::IntakeConfig {
                brokers,
                topic,
                domain,
                max_body_bytes,
                max_payload_bytes,
                produce_timeout_ms,
                kafka_options: Vec::new(),
            };
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async move {
                install_metrics(metrics_addr)?;
                let stop = shutdown_signal()?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                squall::intake::serve(config, listener, async move {
                    stop.await;
                    tracing::info!("signal: intake stopping");
                })
                .await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Validate { file, sets } => match load(&file, &sets)? {
            Ok(topology) => {
                print!("{topology}");
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                eprint!("{}: {problems}", file.display());
                Ok(ExitCode::from(2))
            }
        },
        Command::Run {
            file,
            sets,
            metrics_addr,
            workers,
        } => {
            let topology = match load(&file, &sets)? {
                Ok(t) => t,
                Err(problems) => {
                    eprint!("{}: {problems}", file.display());
                    return Ok(ExitCode::from(2));
                }
            };
            run_until_signal(topology, "topology", workers, metrics_addr)
        }
    }
}
