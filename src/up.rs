//! `squall up`: the whole alert pipeline in one process on embedded defaults, and
//! `squall notifier` on its own.
//!
//! `squall up` starts, in order: a Kafka-protocol broker when `kafka.brokers` is empty
//! (librdkafka's in-process mock cluster: nothing to install, but its queues live in
//! memory), the topics it needs, the SQLite database under `data_dir`, the admin API, the
//! intake, the alert topology (`examples/topologies/alerting.toml`, built into the binary)
//! and the notifier. It prints where each service listens, and stops everything in order
//! on Ctrl-C or SIGTERM.
//!
//! Configuration: `squall.toml` (`--config`), every key overridable from the environment
//! as `SQUALL__SECTION__KEY` (e.g. `SQUALL__INTAKE__LISTEN=0.0.0.0:8080`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde::Deserialize;
use serde_json::json;
use squall_runtime::RunningTopology;
use squall_topology::{load_topology_toml, EnvOverrides, Topology, TopologyBuilder};

/// The alert topology `squall up` runs.
pub const ALERTING_TOML: &str = include_str!("../examples/topologies/alerting.toml");

/// The topics (after `kafka.prefix`, default `squall.`) and consumer groups `squall up` uses.
#[derive(Clone, Debug)]
pub struct Names {
    /// Payload envelopes from the intake.
    pub payloads: String,
    /// Notifications from the alert topology.
    pub notifications: String,
    /// Rejected payloads.
    pub rejected: String,
    /// Records that failed every retry.
    pub dead_letter: String,
    /// The alert topology's consumer group.
    pub alerting_group: String,
    /// The notifier's consumer group.
    pub notifier_group: String,
}

impl Names {
    /// The names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Names {
            payloads: format!("{prefix}payloads"),
            notifications: format!("{prefix}notifications"),
            rejected: format!("{prefix}rejected"),
            dead_letter: format!("{prefix}dead-letter"),
            alerting_group: format!("{prefix}alerting"),
            notifier_group: format!("{prefix}notifier"),
        }
    }

    /// Every topic.
    pub fn topics(&self) -> [&str; 4] {
        [
            &self.payloads,
            &self.notifications,
            &self.rejected,
            &self.dead_letter,
        ]
    }
}

/// `[intake]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSection {
    /// Where agents post.
    pub listen: SocketAddr,
    /// Agents post to `<account>.agent.<domain>`.
    pub domain: String,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest decompressed payload.
    pub max_payload_bytes: usize,
    /// How long the broker may take to acknowledge a payload.
    pub produce_timeout_ms: u64,
}

impl Default for IntakeSection {
    fn default() -> Self {
        IntakeSection {
            listen: ([127, 0, 0, 1], 8080).into(),
            domain: "example.com".into(),
            max_body_bytes: 1 << 20,
            max_payload_bytes: 8 << 20,
            produce_timeout_ms: 5_000,
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// The bearer token (at least 16 characters). Empty: one is generated and stored in
    /// `DATA_DIR/admin-token`, and reused on the next start.
    pub token: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: ([127, 0, 0, 1], 8081).into(),
            token: String::new(),
        }
    }
}

/// `[kafka]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap servers; empty runs the embedded broker.
    pub brokers: String,
    /// Partitions of the topics created when missing.
    pub partitions: i32,
    /// Prefix of every topic and consumer group name.
    pub prefix: String,
    /// Consumer group session timeout: how soon the partitions of a member that died
    /// without leaving are handed to another.
    pub session_timeout_ms: u64,
    /// How long a consumer's fetch may wait at the broker for data. Brokers answer as soon
    /// as data arrives, but some (tansu) only when this runs out: it bounds the pipeline's
    /// latency on those.
    pub fetch_wait_max_ms: u64,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: String::new(),
            partitions: 4,
            prefix: "squall.".into(),
            session_timeout_ms: 10_000,
            fetch_wait_max_ms: 5,
        }
    }
}

/// `[db]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSection {
    /// `sqlite://PATH`; empty: `DATA_DIR/squall.db`.
    pub url: String,
}

/// `[notifier]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSection {
    /// Notifications older than this are archived, not sent.
    pub max_age_s: u64,
    /// First retry delay.
    pub initial_backoff_ms: u64,
    /// Longest retry delay.
    pub max_backoff_ms: u64,
    /// Timeout of one request.
    pub request_timeout_ms: u64,
    /// Delivery tasks.
    pub parallelism: i64,
}

impl Default for NotifierSection {
    fn default() -> Self {
        NotifierSection {
            max_age_s: 3600,
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            request_timeout_ms: 10_000,
            parallelism: 2,
        }
    }
}

/// The whole `squall.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UpConfig {
    /// Where the database (and the generated admin token) live.
    pub data_dir: PathBuf,
    /// The intake.
    pub intake: IntakeSection,
    /// The admin API.
    pub admin: AdminSection,
    /// The broker.
    pub kafka: KafkaSection,
    /// The database.
    pub db: DbSection,
    /// The notifier.
    pub notifier: NotifierSection,
}

impl Default for UpConfig {
    fn default() -> Self {
        UpConfig {
            data_dir: PathBuf::from("squall-data"),
            intake: IntakeSection::default(),
            admin: AdminSection::default(),
            kafka: KafkaSection::default(),
            db: DbSection::default(),
            notifier: NotifierSection::default(),
        }
    }
}

impl UpConfig {
    /// Reads `file` (if given, or `squall.toml` if present) and the `SQUALL__SECTION__KEY`
    /// environment overrides from `vars`.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        match file {
            Some(f) => b = b.add_source(config::File::from(f).required(true)),
            None => b = b.add_source(config::File::with_name("squall.toml").required(false)),
        }
        let sections = ["DATA_DIR", "INTAKE", "ADMIN", "KAFKA", "DB", "NOTIFIER"];
        let ours: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix("SQUALL__")
                    .is_some_and(|rest| sections.iter().any(|s| rest.starts_with(s)))
            })
            .collect();
        b = b.add_source(
            config::Environment::with_prefix("SQUALL")
                .prefix_separator("__")
                .separator("__")
                .source(Some(ours)),
        );
        let mut config: UpConfig = b
            .build()
            .and_then(|c| c.try_deserialize())
            .context("reading the squall configuration")?;
        if config.db.url.is_empty() {
            config.db.url = format!("sqlite://{}", config.data_dir.join("squall.db").display());
        }
        Ok(config)
    }
}

/// Creates `topics` on `brokers` with `partitions` each, leaving existing ones alone.
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .with_context(|| format!("creating topics on {brokers}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// librdkafka options of the consumers: the group session timeout, heartbeats well
/// inside it, and the longest fetch wait.
pub fn consumer_options(session_timeout_ms: u64, fetch_wait_max_ms: u64) -> serde_json::Value {
    json!({
        "session.timeout.ms": session_timeout_ms.to_string(),
        "heartbeat.interval.ms": (session_timeout_ms / 5).max(100).to_string(),
        "fetch.wait.max.ms": fetch_wait_max_ms.to_string(),
    })
}

/// The alert topology with `brokers`, `db_url`, topic names and consumer options filled
/// in (plus `--set` style `sets`).
pub fn alerting_topology(
    brokers: &str,
    db_url: &str,
    names: &Names,
    consumer: &serde_json::Value,
    sets: &[String],
) -> anyhow::Result<Topology> {
    let mut all: Vec<String> = vec![
        format!("spouts.payloads.options={consumer}"),
        format!("spouts.payloads.brokers={brokers}"),
        format!("spouts.payloads.topic={}", names.payloads),
        format!("spouts.payloads.group_id={}", names.alerting_group),
        format!("spouts.payloads.dead_letter_topic={}", names.dead_letter),
        format!("bolts.notifications.topic={}", names.notifications),
        format!("bolts.rejected.topic={}", names.rejected),
        format!("bolts.notifications.brokers={brokers}"),
        format!("bolts.rejected.brokers={brokers}"),
        format!("bolts.enrich.db_url={db_url}"),
        format!("bolts.store.db_url={db_url}"),
        format!("bolts.threshold.db_url={db_url}"),
    ];
    all.extend(sets.iter().cloned());
    let def = load_topology_toml(ALERTING_TOML, "alerting.toml", &all, &EnvOverrides::Process)?;
    def.validate(&crate::registry())
        .map_err(|e| anyhow::anyhow!("alerting.toml: {e}"))
}

/// The notifier: the `kafka` spout on `squall.notifications` (group `squall.notifier`),
/// at-least-once, feeding the `deliver` bolt, fields-grouped by key so each alert's
/// notifications to one recipient are delivered in order.
pub fn notifier_topology(
    brokers: &str,
    db_url: &str,
    names: &Names,
    consumer: &serde_json::Value,
    n: &NotifierSection,
) -> anyhow::Result<Topology> {
    let mut b = TopologyBuilder::new("notifier");
    // A notification may be retried until it is `max_age_s` old: its tuple must not time
    // out before.
    b.config().message_timeout_ms = (n.max_age_s + 300) * 1000;
    let options = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    b.set_registered_spout(
        "notifications",
        1,
        "kafka",
        options(json!({
            "brokers": brokers,
            "topic": names.notifications,
            "group_id": names.notifier_group,
            "dead_letter_topic": names.dead_letter,
            "options": consumer,
            "retry": {"max_retries": 1_000_000, "initial_delay_ms": 1000, "max_delay_ms": 60000},
        })),
    );
    b.set_registered_bolt(
        "deliver",
        n.parallelism,
        "deliver",
        options(json!({
            "db_url": db_url,
            "max_age_s": n.max_age_s,
            "initial_backoff_ms": n.initial_backoff_ms,
            "max_backoff_ms": n.max_backoff_ms,
            "request_timeout_ms": n.request_timeout_ms,
        })),
    )
    .fields_grouping("notifications", ["key"]);
    b.build_with(&crate::registry())
        .map_err(|e| anyhow::anyhow!("notifier: {e}"))
}

fn admin_token(config: &UpConfig) -> anyhow::Result<String> {
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
    std::fs::write(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Runs everything until `stop` resolves. `brokers` is the broker to use (the caller
/// starts the embedded one when the configuration names none, and creates its topics:
/// then `create_topics` is false).
pub async fn run(
    config: UpConfig,
    brokers: String,
    create_topics: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let token = admin_token(&config)?;
    let db = config.db.url.clone();
    let names = Names::new(&config.kafka.prefix);
    if create_topics {
        ensure_topics(&brokers, &names.topics(), config.kafka.partitions).await?;
    }

    let stores = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            squall_pipeline::stores::open(&db).with_context(|| format!("opening {db}"))
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

    let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin: listening on {}", config.admin.listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let admin = crate::admin::router(crate::admin::AdminState::new(stores, token.as_str()));
    let admin_stopped = stopped();
    let admin_task = tokio::spawn(async move {
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(admin_stopped)
            .await
    });

    let intake_listener = tokio::net::TcpListener::bind(config.intake.listen)
        .await
        .with_context(|| format!("intake: listening on {}", config.intake.listen))?;
    let intake_addr = intake_listener.local_addr()?;
    let intake_config = crate::intake::IntakeConfig {
        brokers: brokers.clone(),
        topic: names.payloads.clone(),
        domain: config.intake.domain.clone(),
        max_body_bytes: config.intake.max_body_bytes,
        max_payload_bytes: config.intake.max_payload_bytes,
        produce_timeout_ms: config.intake.produce_timeout_ms,
        kafka_options: Vec::new(),
    };
    let intake_task = tokio::spawn(crate::intake::serve(
        intake_config,
        intake_listener,
        stopped(),
    ));

    let consumer = consumer_options(
        config.kafka.session_timeout_ms,
        config.kafka.fetch_wait_max_ms,
    );
    let topology =
        RunningTopology::start(alerting_topology(&brokers, &db, &names, &consumer, &[])?)?;
    let notifier = RunningTopology::start(notifier_topology(
        &brokers,
        &db,
        &names,
        &consumer,
        &config.notifier,
    )?)?;

    println!("squall is up");
    println!("  intake     http://{intake_addr}/intake/   (agents post here)");
    println!("  admin API  http://{admin_addr}/api/v1/   (Authorization: Bearer {token})");
    println!("  kafka      {brokers}");
    println!("  database   {db}");
    println!("  topology   alerting (examples/topologies/alerting.toml), notifier");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    stop.await;
    tracing::info!("stopping: intake and admin first, then the topologies drain");
    let _ = stop_tx.send(true);
    let _ = intake_task.await;
    let _ = admin_task.await;
    let report = topology.shutdown_and_join().await;
    tracing::info!("alerting topology stopped:\n{report}");
    let report = notifier.shutdown_and_join().await;
    tracing::info!("notifier stopped:\n{report}");
    Ok(())
}
