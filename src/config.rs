//! The configuration of every `squall` service command (`up`, `intake`, `notifier`,
//! `admin`): the one place its defaults are written.
//!
//! Three sources fill the same structs, later ones winning: the built-in defaults (the
//! `Default` impls below), the file (`squall.toml`, or `--config FILE`), the environment
//! (`SQUALL__SECTION__KEY`, e.g. `SQUALL__INTAKE__LISTEN=0.0.0.0:8080`), then the
//! command's flags (`--listen`, `--data-dir`, ...), which [`Config::load`] applies as
//! overrides of the same keys. Every struct denies unknown fields, so a misspelt section or
//! key in the file is an error that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use squall_pipeline::topologies::{AlertingOptions, Cluster, Names, NotifierOptions};
use squall_services::intake::IntakeConfig;

/// The whole `squall.toml`.
#[derive(Clone, Debug, Deserialize)]
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
    pub alerting: AlertingSection,
    /// The notifier.
    pub notifier: NotifierSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("squall-data"),
            intake: IntakeSection::default(),
            admin: AdminSection::default(),
            kafka: KafkaSection::default(),
            db: DbSection::default(),
            alerting: AlertingSection::default(),
            notifier: NotifierSection::default(),
        }
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
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest decompressed payload, in bytes.
    pub max_payload_bytes: usize,
    /// How long the broker may take to acknowledge a payload before agents get 503.
    pub produce_timeout_ms: u64,
    /// The topic payload envelopes go to (empty: `<kafka.prefix>payloads`).
    pub topic: String,
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
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Where the admin API listens.
    pub listen: SocketAddr,
    /// The bearer token (at least 16 characters). Empty: `squall up` generates one and
    /// keeps it in `DATA_DIR/admin-token` for the next start.
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
    /// Bootstrap servers; empty: `squall up` runs the embedded broker.
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

/// `[alerting]`: the alert topology's tasks and timers.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSection {
    /// Kafka consumers of the payloads topic in this process.
    pub payloads_parallelism: i64,
    /// `enrich` tasks.
    pub enrich_parallelism: i64,
    /// `split` tasks.
    pub split_parallelism: i64,
    /// `store` tasks.
    pub store_parallelism: i64,
    /// `threshold` tasks.
    pub threshold_parallelism: i64,
    /// `notify` tasks.
    pub notify_parallelism: i64,
    /// How often no-data rules are checked.
    pub tick_interval_ms: u64,
    /// Days minute snapshots are kept (hourly aggregates stay).
    pub snapshot_retention_days: u32,
}

impl Default for AlertingSection {
    fn default() -> Self {
        AlertingSection {
            payloads_parallelism: 1,
            enrich_parallelism: 2,
            split_parallelism: 1,
            store_parallelism: 1,
            threshold_parallelism: 2,
            notify_parallelism: 1,
            tick_interval_ms: 1_000,
            snapshot_retention_days: 5,
        }
    }
}

/// `[notifier]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSection {
    /// Notifications older than this are archived, not sent.
    pub max_age_s: u64,
    /// First retry delay (doubling per attempt, with jitter).
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
        let mut b = config::Config::builder();
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
        if config.intake.topic.is_empty() {
            config.intake.topic = Names::new(&config.kafka.prefix).payloads;
        }
        Ok(config)
    }

    /// The topic and group names under `kafka.prefix`.
    pub fn names(&self) -> Names {
        Names::new(&self.kafka.prefix)
    }

    /// The consumers' librdkafka options.
    pub fn consumer_options(&self) -> std::collections::BTreeMap<String, String> {
        squall_pipeline::topologies::consumer_options(
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
            kafka_options: Vec::new(),
        }
    }

    /// The alert topology's options.
    pub fn alerting(&self) -> AlertingOptions {
        let a = &self.alerting;
        AlertingOptions {
            payloads_parallelism: a.payloads_parallelism,
            enrich_parallelism: a.enrich_parallelism,
            split_parallelism: a.split_parallelism,
            store_parallelism: a.store_parallelism,
            threshold_parallelism: a.threshold_parallelism,
            notify_parallelism: a.notify_parallelism,
            tick_interval_ms: a.tick_interval_ms,
            snapshot_retention_days: a.snapshot_retention_days,
        }
    }

    /// The notifier topology's options.
    pub fn notifier(&self) -> NotifierOptions {
        let n = &self.notifier;
        NotifierOptions {
            parallelism: n.parallelism,
            max_age_s: n.max_age_s,
            initial_backoff_ms: n.initial_backoff_ms,
            max_backoff_ms: n.max_backoff_ms,
            request_timeout_ms: n.request_timeout_ms,
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
}
