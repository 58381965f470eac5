//! The `squall` command line: what each command takes. Service commands (`up`, `intake`,
//! `notifier`, `admin`) read [`crate::config::Config`]; their flags are overrides of its
//! keys and have no defaults of their own.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "squall",
    version,
    about = "Storm-style stream-processing topologies in Rust"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a service command's configuration comes from, and its metrics.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The configuration file (default: `squall.toml` if present). Every key can also be
    /// set as `SQUALL__SECTION__KEY`; flags win over both.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Serve the web UI's topology pages on this address, e.g. 127.0.0.1:9300 (prints a
        /// link that signs in; the token is `SQUALL_UI_TOKEN`, else a new random one).
        #[arg(long, value_name = "ADDR")]
        ui_addr: Option<SocketAddr>,
    },
    /// Run the whole alert pipeline in one process: broker (embedded unless
    /// `kafka.brokers` is set), database, intake, admin API, alert topology, notifier.
    Up {
        /// Configuration and metrics.
        #[command(flatten)]
        service: ServiceArgs,
        /// Where the database and the generated admin token live (`data_dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The services this process runs: any of intake, admin, topology, notifier,
        /// comma-separated (default: all). Processes with the same `kafka.brokers`,
        /// `kafka.prefix` and a PostgreSQL `db.url` form one cluster.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        services: Vec<String>,
    },
    /// Serve the intake agents post their payloads to (`POST /intake/`, `POST /postback/`),
    /// queueing them on Kafka.
    Intake {
        /// Configuration and metrics.
        #[command(flatten)]
        service: ServiceArgs,
        /// Address to listen on (`intake.listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Kafka bootstrap servers (`kafka.brokers`; required here).
        #[arg(long)]
        brokers: Option<String>,
        /// The topic payload envelopes are produced to (`intake.topic`).
        #[arg(long)]
        topic: Option<String>,
        /// Agents post to `<account>.agent.<domain>` (`intake.domain`).
        #[arg(long)]
        domain: Option<String>,
        /// Largest request body, in bytes (`intake.max_body_bytes`).
        #[arg(long)]
        max_body_bytes: Option<usize>,
        /// Largest decompressed payload, in bytes (`intake.max_payload_bytes`).
        #[arg(long)]
        max_payload_bytes: Option<usize>,
        /// How long the broker may take to acknowledge a payload before agents get 503
        /// (`intake.produce_timeout_ms`).
        #[arg(long)]
        produce_timeout_ms: Option<u64>,
    },
    /// Deliver the notifications queued on `<prefix>notifications` (webhook, Slack,
    /// PagerDuty), with retries; each id is delivered at most once.
    Notifier {
        /// Configuration and metrics.
        #[command(flatten)]
        service: ServiceArgs,
        /// Kafka bootstrap servers (`kafka.brokers`; required here).
        #[arg(long)]
        brokers: Option<String>,
        /// The database delivery outcomes are recorded in (`db.url`).
        #[arg(long)]
        db: Option<String>,
        /// Notifications older than this many seconds are archived, not sent
        /// (`notifier.max_age_s`).
        #[arg(long)]
        max_age_s: Option<u64>,
        /// First retry delay, doubling per attempt, with jitter
        /// (`notifier.initial_backoff_ms`).
        #[arg(long)]
        initial_backoff_ms: Option<u64>,
        /// Longest retry delay (`notifier.max_backoff_ms`).
        #[arg(long)]
        max_backoff_ms: Option<u64>,
        /// Delivery tasks (`notifier.parallelism`).
        #[arg(long)]
        parallelism: Option<i64>,
        /// Prefix of the topic and consumer group names (`kafka.prefix`).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Serve the admin API (`/api/v1`: accounts, agent keys, devices, alert configs,
    /// alerts, metrics), or `admin import FILE`.
    Admin {
        /// What to do instead of serving.
        #[command(subcommand)]
        action: Option<AdminAction>,
        /// Configuration and metrics.
        #[command(flatten)]
        service: ServiceArgs,
        /// Address to listen on (`admin.listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The database (`db.url`, e.g. `sqlite://squall.db`).
        #[arg(long, global = true)]
        db: Option<String>,
        /// The bearer token every call must carry (`admin.token`; required to serve).
        #[arg(long, hide_env_values = true)]
        token: Option<String>,
    },
    /// The dead letters of a running `squall up` (through its admin API): what the
    /// pipeline gave up on, and replaying them once the cause is fixed.
    DeadLetters {
        /// What to do.
        #[command(subcommand)]
        action: DeadLettersAction,
        /// Configuration (`admin.listen`, `admin.token`, `data_dir`).
        #[command(flatten)]
        service: ServiceArgs,
        /// The admin API's base URL (default: `http://<admin.listen>`).
        #[arg(long, global = true)]
        admin: Option<String>,
        /// The data directory holding the generated admin token (`data_dir`).
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// An in-memory Kafka-protocol cluster (librdkafka's mock cluster) on 127.0.0.1 for
    /// development and tests, with squall's topics: prints `KAFKA_BROKERS=HOST:PORT` and
    /// serves until Ctrl-C or SIGTERM. Several `squall up` processes can share it; it
    /// loses everything when it stops.
    Broker {
        /// The topics' prefix (`kafka.prefix`).
        #[arg(long, default_value = "squall.")]
        prefix: String,
        /// Partitions per topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Session timeout of members of KIP-848 groups (`kafka.group_protocol =
        /// "consumer"`), which the broker sets; heartbeats come five times within it.
        /// Classic groups' members send their own (`kafka.session_timeout_ms`).
        #[arg(long, default_value_t = 10_000)]
        session_timeout_ms: u64,
    },
    /// Alert rules in squall's rule language (README, "Alert rule language").
    Rules {
        /// What to do.
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Benchmarks of the alert pipeline.
    Bench {
        /// Which.
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `squall rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Checks rules: prints each in its normal form, or every error with its line, column
    /// and a caret under the place; exit code 2 when any has errors.
    Check {
        /// A rule (`'system.load.1 >= 4 for 2m'`), or with `--file`, files of rules, one
        /// per line (blank lines and lines starting with `#` are skipped).
        #[arg(required = true)]
        rules: Vec<String>,
        /// The arguments are files of rules.
        #[arg(long)]
        file: bool,
    },
}

/// `squall dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLettersAction {
    /// List the dead letters not replayed yet, with their reasons, and a count per reason.
    List {
        /// Only those whose reason contains this text.
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-inject the dead letters not replayed yet into the topics they came from (the
    /// payloads topic, for the alert pipeline), each marked replayed once the broker has it.
    Replay {
        /// Only those whose reason contains this text.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `squall admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Load accounts, agent keys and alert configs from a fixtures file
    /// (`{"accounts": [...], "alerts": [...]}`), in one transaction; importing again
    /// changes nothing. Prints what was done as JSON.
    Import {
        /// The fixtures file.
        file: PathBuf,
    },
}

/// `squall bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
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
        /// Write every distinct alert transition (`device|rule|TRIGGER|t`), sorted, here
        /// (the peers' `--dump`, for diffing).
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// `squall up` SIGKILLed at random moments (seeded) while a fleet posts, restarted
    /// each time, then checked against a fault-free run of the same payloads: nothing
    /// answered 202 lost, the same alerts, every notification delivered; repeats counted.
    /// Prints one JSON line; exit code 1 when a check fails.
    Chaos {
        /// The run.
        #[command(flatten)]
        options: squall_bench::chaos::ChaosOptions,
    },
    /// A cluster of `squall up` processes (one broker, one PostgreSQL database) under a
    /// steady fleet: one process SIGKILLed at a time, and the time until its partitions
    /// are processed again, measured from outside. Prints one JSON line.
    Failover {
        /// The run.
        #[command(flatten)]
        options: squall_bench::chaos::FailoverOptions,
    },
    /// A simulated fleet of agents posting real-format v2 payloads (zlib, Content-MD5)
    /// over HTTP to an intake, through Kafka and the alert topology, all in this process
    /// and configured as `squall up` is; prints per-stage latency percentiles, writes
    /// `report.json` and `latency.svg`.
    Fleet {
        /// Kafka bootstrap servers (default: the embedded broker).
        #[arg(long)]
        brokers: Option<String>,
        /// The fleet.
        #[command(flatten)]
        options: squall_bench::fleet::FleetOptions,
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
    /// The peer benchmarks' W1 word count (xorshift word spout -> identity split -> fields
    /// grouping -> count) through squall's runtime; prints the peers' JSON line.
    Wordcount {
        /// The run.
        #[command(flatten)]
        options: squall_bench::wordcount::WordCountOptions,
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
