//! The configuration of every `squall` service command (`up`, `intake`, `notifier`,
//! `admin`): the one place its defaults are written.
//!
//! Four sources fill the same structs, later ones winning: the built-in defaults (the
//! `Default` impls below, the only place they are written), the file (`squall.toml`, or `--config FILE`), the environment
//! (`SQUALL__SECTION__KEY`, e.g. `SQUALL__INTAKE__LISTEN=0.0.0.0:8080`), then the
//! command's flags (`--listen`, `--data-dir`, ...), which [`Config::load`] applies as
//! overrides of the same keys. Every struct denies unknown fields, so a misspelt section or
//! key in the file is an error that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use squall_connectors::kafka::GroupProtocol;
use squall_pipeline::topologies::{AlertingOptions, Cluster, Names, NotifierOptions};
use squall_services::intake::IntakeConfig;

/// The whole `squall.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
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
    /// The alert topology.
    pub alerting: AlertingOptions,
    /// The notifier.
    pub notifier: NotifierOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("squall-data"),
            intake: IntakeSection::default(),
            admin: AdminSection::default(),
            kafka: KafkaSection::default(),
            db: DbSection::default(),
            alerting: AlertingOptions {
                payloads_parallelism: 1,
                enrich_parallelism: 2,
                split_parallelism: 1,
                store_parallelism: 1,
                threshold_parallelism: 2,
                notify_parallelism: 1,
                tick_interval_ms: 1_000,
                snapshot_retention_days: 5,
                enrich_cache_max_mb: 64,
                max_future_skew_s: 300,
            },
            notifier: NotifierOptions {
                max_age_s: 3600,
                initial_backoff_ms: 500,
                max_backoff_ms: 60_000,
                request_timeout_ms: 10_000,
                parallelism: 2,
                max_in_flight_per_host: 8,
                allowed_networks: String::new(),
            },
        }
    }
}

/// `[intake.tls]` / `[admin.tls]`: PEM files; both empty: plain HTTP.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain (PEM).
    pub cert: String,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

impl TlsSection {
    /// The files, when TLS is on; an error when only one is set (`what`: `intake.tls`).
    pub fn files(&self, what: &str) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
        match (self.cert.trim(), self.key.trim()) {
            ("", "") => Ok(None),
            (c, k) if !c.is_empty() && !k.is_empty() => Ok(Some((c.into(), k.into()))),
            _ => anyhow::bail!("{what}: set both cert and key (PEM files), or neither"),
        }
    }

    /// How a listener with these settings serves (`what`: `admin.tls`, for errors).
    pub fn serve_options(
        &self,
        what: &str,
        header_timeout_ms: u64,
    ) -> anyhow::Result<squall_services::serve::ServeOptions> {
        let tls = match self.files(what)? {
            Some((cert, key)) => Some(
                squall_services::serve::tls_acceptor(&cert, &key)
                    .with_context(|| what.to_string())?,
            ),
            None => None,
        };
        Ok(squall_services::serve::ServeOptions {
            tls,
            header_timeout: std::time::Duration::from_millis(header_timeout_ms.max(1)),
            ..Default::default()
        })
    }
}

/// `[intake]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSection {
    /// Where agents post.
    pub listen: SocketAddr,
    /// Agents post to `<account>.agent.<domain>`.
    pub domain: String,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest decompressed payload, in bytes.
    pub max_payload_bytes: usize,
    /// How long the broker may take to acknowledge a payload before agents get 503.
    pub produce_timeout_ms: u64,
    /// The topic payload envelopes go to (empty: `<kafka.prefix>payloads`).
    pub topic: String,
    /// Most metric points in one payload (413 `too_many_points` beyond).
    pub max_points: usize,
    /// Longest metric name or label value, in bytes (400 `name_too_long` beyond).
    pub max_name_bytes: usize,
    /// How far ahead of its receive time a payload's `collection_timestamp` may be, in
    /// seconds; beyond (or not a finite number) it is rejected as
    /// `timestamp_out_of_range` and never reaches the device's state.
    pub max_future_skew_s: u64,
    /// How long a client may take to send its body once its headers arrived (408
    /// `body_timeout` beyond).
    pub body_timeout_ms: u64,
    /// Payloads per second one agent key may send (bursts of twice that; 0: no limit).
    pub rate_limit_per_key: u32,
    /// Payloads per second one account may send (bursts of twice that; 0: no limit).
    pub rate_limit_per_account: u32,
    /// How long a client may take to send its request headers (and TLS handshake).
    pub header_timeout_ms: u64,
    /// HTTPS: `intake.tls.cert` and `intake.tls.key`.
    pub tls: TlsSection,
}

impl Default for IntakeSection {
    fn default() -> Self {
        IntakeSection {
            listen: ([127, 0, 0, 1], 8080).into(),
            domain: "example.com".into(),
            max_body_bytes: 1 << 20,
            max_payload_bytes: 8 << 20,
            produce_timeout_ms: 5_000,
            topic: String::new(),
            max_future_skew_s: 300,
            max_points: 10_000,
            max_name_bytes: 255,
            body_timeout_ms: 30_000,
            rate_limit_per_key: 50,
            rate_limit_per_account: 0,
            header_timeout_ms: 10_000,
            tls: TlsSection::default(),
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// The bearer token (at least 16 characters). Empty: `squall up` generates one and
    /// keeps it in `DATA_DIR/admin-token` for the next start.
    pub token: String,
    /// HTTPS: `admin.tls.cert` and `admin.tls.key`.
    pub tls: TlsSection,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: ([127, 0, 0, 1], 8081).into(),
            token: String::new(),
            tls: TlsSection::default(),
        }
    }
}

/// Which embedded broker `squall up` runs when `kafka.brokers` is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddedKind {
    /// The journal under `DATA_DIR/journal`: durable, one process.
    #[default]
    Durable,
    /// librdkafka's in-memory mock cluster: loses what is queued when the process ends.
    Memory,
}

/// `[kafka]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap servers; empty: `squall up` runs the embedded broker.
    pub brokers: String,
    /// The embedded broker, when `brokers` is empty: `durable` (the journal under
    /// `DATA_DIR/journal`: a payload answered 202 is on disk) or `memory` (librdkafka's
    /// mock cluster: everything queued is lost with the process; tests and benchmarks).
    pub embedded: EmbeddedKind,
    /// The durable embedded broker: megabytes a partition may hold past what its readers
    /// committed before writes to it are refused (the intake answers 503: agents retry
    /// later), so a pipeline that cannot make progress does not fill the disk.
    pub journal_max_backlog_mb: u64,
    /// Partitions of the topics created when missing.
    pub partitions: i32,
    /// Prefix of every topic and consumer group name.
    pub prefix: String,
    /// The consumer group protocol: `classic` (every broker) or `consumer` (KIP-848:
    /// Kafka 4.0 and later, `squall broker`), with which a dead member's partitions move
    /// at the survivors' next heartbeat instead of after a group-wide rebalance.
    pub group_protocol: GroupProtocol,
    /// Consumer group session timeout (`classic` groups; with `consumer` it is the
    /// broker's `group.consumer.session.timeout.ms`, and `squall broker` takes it from
    /// here): how soon the partitions of a member that died without leaving are handed to
    /// another.
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
            embedded: EmbeddedKind::Durable,
            journal_max_backlog_mb: 1024,
            partitions: 4,
            prefix: "squall.".into(),
            group_protocol: GroupProtocol::Classic,
            session_timeout_ms: 10_000,
            fetch_wait_max_ms: 5,
        }
    }
}

/// `[db]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSection {
    /// `sqlite://PATH`; empty: `DATA_DIR/squall.db`.
    pub url: String,
}

/// The environment variables [`Config::load`] reads: `SQUALL__<SECTION>__...` of its own
/// sections (others, such as a topology file's `SQUALL__BOLTS__...`, are not its own).
const SECTIONS: [&str; 7] = [
    "DATA_DIR", "INTAKE", "ADMIN", "KAFKA", "DB", "ALERTING", "NOTIFIER",
];

impl Config {
    /// Reads `file` (if given, else `squall.toml` if present), the `SQUALL__SECTION__KEY`
    /// variables of `vars`, then `flags` (`("intake.listen", "0.0.0.0:8080")`, ...): each
    /// later source overrides the earlier ones, key by key.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        // The defaults are the first source: every key exists before the file, the
        // environment and the flags override some of them.
        let mut b = config::Config::builder().add_source(
            config::Config::try_from(&Config::default()).context("the built-in defaults")?,
        );
        b = match file {
            Some(f) => b.add_source(config::File::from(f).required(true)),
            None => b.add_source(config::File::with_name("squall.toml").required(false)),
        };
        let ours: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix("SQUALL__")
                    .is_some_and(|rest| SECTIONS.iter().any(|s| rest.starts_with(s)))
            })
            .collect();
        b = b.add_source(
            config::Environment::with_prefix("SQUALL")
                .prefix_separator("__")
                .separator("__")
                .source(Some(ours)),
        );
        for (key, value) in flags {
            b = b.set_override(*key, value.as_str())?;
        }
        let mut config: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .context("reading the squall configuration")?;
        if config.db.url.is_empty() {
            config.db.url = format!("sqlite://{}", config.data_dir.join("squall.db").display());
        }
        config.alerting.max_future_skew_s = config.intake.max_future_skew_s;
        if config.intake.topic.is_empty() {
            config.intake.topic = Names::new(&config.kafka.prefix).payloads;
        }
        Ok(config)
    }

    /// Where the durable embedded broker keeps its journal.
    pub fn journal_dir(&self) -> std::path::PathBuf {
        self.data_dir.join("journal")
    }

    /// The topic and group names under `kafka.prefix`.
    pub fn names(&self) -> Names {
        Names::new(&self.kafka.prefix)
    }

    /// The consumers' librdkafka options.
    pub fn consumer_options(&self) -> std::collections::BTreeMap<String, String> {
        squall_pipeline::topologies::consumer_options(
            self.kafka.group_protocol,
            self.kafka.session_timeout_ms,
            self.kafka.fetch_wait_max_ms,
        )
    }

    /// How the topologies reach the cluster through `brokers`.
    pub fn cluster(&self, brokers: &str) -> Cluster {
        Cluster {
            brokers: brokers.to_string(),
            names: self.names(),
            db_url: self.db.url.clone(),
            consumer: self.consumer_options(),
        }
    }

    /// The intake's settings, producing to `brokers`.
    pub fn intake(&self, brokers: &str) -> IntakeConfig {
        let i = &self.intake;
        IntakeConfig {
            brokers: brokers.to_string(),
            topic: i.topic.clone(),
            domain: i.domain.clone(),
            max_body_bytes: i.max_body_bytes,
            max_payload_bytes: i.max_payload_bytes,
            produce_timeout_ms: i.produce_timeout_ms,
            max_points: i.max_points,
            max_name_bytes: i.max_name_bytes,
            body_timeout_ms: i.body_timeout_ms,
            rate_limit_per_key: i.rate_limit_per_key,
            rate_limit_per_account: i.rate_limit_per_account,
            kafka_options: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("squall.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
        let (_d, path) = file(
            "data_dir = \"from-file\"\n[intake]\ndomain = \"file.example\"\nlisten = \"127.0.0.1:1000\"\n",
        );
        let vars = [
            (
                "SQUALL__INTAKE__LISTEN".to_string(),
                "127.0.0.1:2000".to_string(),
            ),
            ("SQUALL__DATA_DIR".to_string(), "from-env".to_string()),
            ("SQUALL__BOLTS__X__PARALLELISM".to_string(), "3".to_string()),
        ];
        let c = Config::load(Some(&path), vars, &[("data_dir", "from-flag".into())]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("from-flag"), "flag");
        assert_eq!(c.intake.listen.port(), 2000, "environment");
        assert_eq!(c.intake.domain, "file.example", "file");
        assert_eq!(c.intake.max_body_bytes, 1 << 20, "default");
        assert_eq!(
            c.db.url, "sqlite://from-flag/squall.db",
            "derived from data_dir"
        );
        assert_eq!(
            c.intake.topic, "squall.payloads",
            "derived from kafka.prefix"
        );
    }

    #[test]
    fn a_misspelt_section_or_key_is_an_error_naming_it() {
        let (_d, path) = file("[intkae]\nlisten = \"127.0.0.1:1\"\n");
        let e = format!("{:#}", Config::load(Some(&path), [], &[]).unwrap_err());
        assert!(e.contains("intkae"), "{e}");
        let (_d, path) = file("[notifier]\nmax_age = 3\n");
        let e = format!("{:#}", Config::load(Some(&path), [], &[]).unwrap_err());
        assert!(e.contains("max_age"), "{e}");
    }

    #[test]
    fn the_default_alert_topology_is_the_example_file() {
        use squall_pipeline::topologies;
        use squall_topology::{load_topology_toml, EnvOverrides, Topology};

        let mut config = Config::default();
        config.db.url = "sqlite://squall.db".into();
        let code =
            topologies::alerting(&config.cluster("127.0.0.1:19092"), &config.alerting).unwrap();
        let text = include_str!("../examples/topologies/alerting.toml");
        let file = load_topology_toml(text, "alerting.toml", &[], &EnvOverrides::Off)
            .unwrap()
            .validate(&crate::registry())
            .unwrap();
        // The same components, tasks, streams and groupings; only how each component is
        // made (code, or a registered type) and the order of the listing may differ.
        let blocks = |t: &Topology| {
            let text = t.to_string();
            let mut blocks: Vec<String> = Vec::new();
            for line in text.lines().skip(1) {
                let line = match line.find(" type ") {
                    Some(i) => {
                        let rest = &line[i + 6..];
                        let end = rest.find(',').unwrap_or(rest.len());
                        format!("{}{}", &line[..i], &rest[end..])
                    }
                    None => line.to_string(),
                };
                if line.starts_with("  spout") || line.starts_with("  bolt") {
                    blocks.push(line);
                } else if let Some(b) = blocks.last_mut() {
                    b.push('\n');
                    b.push_str(&line);
                }
            }
            blocks.sort();
            (text.lines().next().map(str::to_string), blocks)
        };
        assert_eq!(blocks(&code), blocks(&file));
    }
}
