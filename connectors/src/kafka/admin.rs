//! Setting up a cluster: topics created when missing ([`ensure_topics`]), and the embedded
//! broker ([`EmbeddedBroker`]): either the durable [journal](crate::journal) under a
//! directory (the default of `squall up`), or librdkafka's in-process mock cluster, which
//! keeps everything in memory and loses it with the process (for tests, benchmarks and
//! development, never for data that matters; it also drops the oldest records of a
//! partition past about 5 MB).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

use crate::journal::{journal_dir, Journal, JournalOptions, JOURNAL_SCHEME};

/// Why a cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// librdkafka refused or failed a call.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The journal could not be opened or written.
    #[error("{what}: {source}")]
    Journal {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused to create a topic.
    #[error("creating topic {topic}: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: rdkafka::types::RDKafkaErrorCode,
    },
}

/// Creates `topics` on `brokers` (a Kafka cluster or `journal:DIR`) with `partitions` each
/// (replication 1), leaving existing ones alone.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<(), AdminError> {
    if let Some(dir) = journal_dir(brokers) {
        let journal = Journal::open(dir).map_err(|source| AdminError::Journal {
            what: format!("opening the journal in {}", dir.display()),
            source,
        })?;
        for t in topics {
            journal
                .ensure_topic(t, partitions)
                .map_err(|source| AdminError::Journal {
                    what: format!("creating topic {t}"),
                    source,
                })?;
        }
        return Ok(());
    }
    if all_exist(brokers, topics).await {
        // Nothing to create (and a cluster without CreateTopics, such as librdkafka's
        // mock cluster served by `squall broker`, is never asked to).
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|source| AdminError::Kafka {
            what: "creating the Kafka admin client".into(),
            source,
        })?;
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
        .map_err(|source| AdminError::Kafka {
            what: format!("creating topics on {brokers}"),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// Whether every topic of `topics` exists with partitions on `brokers` (false when the
/// cluster cannot say within 10 s). The metadata call blocks: it runs on a blocking thread.
async fn all_exist(brokers: &str, topics: &[&str]) -> bool {
    let brokers = brokers.to_string();
    let wanted: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let Ok(producer) = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create::<rdkafka::producer::BaseProducer>()
        else {
            return false;
        };
        use rdkafka::producer::Producer;
        match producer
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
        {
            Ok(md) => wanted.iter().all(|t| {
                md.topics()
                    .iter()
                    .any(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty())
            }),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false)
}

/// The embedded broker: the durable journal, or the in-memory mock cluster (see the
/// module docs). It serves for as long as the value lives.
pub struct EmbeddedBroker {
    kind: Embedded,
}

enum Embedded {
    Durable(std::sync::Arc<Journal>),
    /// The client that owns the mock cluster (created with `test.mock.num.brokers`): the
    /// cluster lives as long as it does.
    Memory(BaseProducer),
}

/// How the in-memory cluster times out members of consumer groups that use the consumer
/// group protocol of KIP-848 (`group.protocol=consumer`, [`GroupProtocol::Consumer`](super::GroupProtocol::Consumer)),
/// where the session timeout and heartbeat interval are the broker's settings
/// (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms` on Kafka).
/// Members of classic groups bring their own (`session.timeout.ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupTimeouts {
    /// A member that has not sent a heartbeat for this long is removed and its
    /// partitions are assigned to the others at their next heartbeat.
    pub session_timeout_ms: i32,
    /// How often members send heartbeats (and so learn of new assignments).
    pub heartbeat_interval_ms: i32,
}

impl GroupTimeouts {
    /// `session_timeout_ms` with heartbeats five times within it (as squall's classic
    /// consumers send them).
    pub fn with_session_timeout(session_timeout_ms: u64) -> Self {
        let session = i32::try_from(session_timeout_ms).unwrap_or(i32::MAX);
        GroupTimeouts {
            session_timeout_ms: session,
            heartbeat_interval_ms: (session / 5).max(100),
        }
    }
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish()
    }
}

impl EmbeddedBroker {
    /// The journal in `dir` (created if needed, with `options`) with `topics` of
    /// `partitions` partitions each (existing topics keep theirs). Refused when another
    /// process has it open.
    pub fn durable(
        dir: &std::path::Path,
        options: JournalOptions,
        topics: &[&str],
        partitions: i32,
    ) -> Result<Self, AdminError> {
        let journal = Journal::open_with(dir, options).map_err(|source| AdminError::Journal {
            what: format!("opening the journal in {}", dir.display()),
            source,
        })?;
        for t in topics {
            journal
                .ensure_topic(t, partitions)
                .map_err(|source| AdminError::Journal {
                    what: format!("creating topic {t}"),
                    source,
                })?;
        }
        Ok(EmbeddedBroker {
            kind: Embedded::Durable(journal),
        })
    }

    /// librdkafka's mock cluster (one broker, in memory, real TCP on 127.0.0.1) with
    /// `topics` of `partitions` partitions each.
    pub fn memory(topics: &[&str], partitions: i32) -> Result<Self, AdminError> {
        Self::memory_with(topics, partitions, None)
    }

    /// [`EmbeddedBroker::memory`], with the group timeouts of KIP-848 consumer groups
    /// (`None`: librdkafka's, a 30 s session and 3 s heartbeats).
    pub fn memory_with(
        topics: &[&str],
        partitions: i32,
        groups: Option<GroupTimeouts>,
    ) -> Result<Self, AdminError> {
        let kafka = |what: &str| {
            let what = what.to_string();
            move |source| AdminError::Kafka { what, source }
        };
        let client: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .map_err(kafka("starting the embedded Kafka broker"))?;
        if let Some(g) = groups {
            // SAFETY: the client was created with `test.mock.num.brokers`, so it owns a
            // mock cluster, which lives as long as the client (kept in the returned value);
            // both setters only store an integer in the cluster's defaults under its lock.
            unsafe {
                let cluster =
                    rdkafka::bindings::rd_kafka_handle_mock_cluster(client.client().native_ptr());
                if cluster.is_null() {
                    return Err(AdminError::Kafka {
                        what: "starting the embedded Kafka broker".into(),
                        source: rdkafka::error::KafkaError::MockCluster(
                            rdkafka::types::RDKafkaErrorCode::Fail,
                        ),
                    });
                }
                rdkafka::bindings::rd_kafka_mock_set_group_consumer_session_timeout_ms(
                    cluster,
                    g.session_timeout_ms,
                );
                rdkafka::bindings::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(
                    cluster,
                    g.heartbeat_interval_ms,
                );
            }
        }
        let cluster = client
            .client()
            .mock_cluster()
            .ok_or(rdkafka::error::KafkaError::MockCluster(
                rdkafka::types::RDKafkaErrorCode::Fail,
            ))
            .map_err(kafka("starting the embedded Kafka broker"))?;
        for t in topics {
            cluster
                .create_topic(t, partitions, 1)
                .map_err(kafka(&format!("creating topic {t}")))?;
        }
        drop(cluster);
        Ok(EmbeddedBroker {
            kind: Embedded::Memory(client),
        })
    }

    /// What clients put in `brokers`: `journal:DIR`, or the mock cluster's
    /// `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        match &self.kind {
            Embedded::Durable(j) => format!("{JOURNAL_SCHEME}{}", j.dir().display()),
            Embedded::Memory(c) => c
                .client()
                .mock_cluster()
                .map(|m| m.bootstrap_servers())
                .unwrap_or_default(),
        }
    }

    /// Whether records survive the process.
    pub fn is_durable(&self) -> bool {
        matches!(self.kind, Embedded::Durable(_))
    }
}
