//! Setting up a cluster: topics created when missing ([`ensure_topics`]), and the embedded
//! broker ([`EmbeddedBroker`]: librdkafka's in-process mock cluster, which keeps
//! everything in memory and loses it with the process: for tests, benchmarks and
//! development, never for data that matters).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;

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
    /// The broker refused to create a topic.
    #[error("creating topic {topic}: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: rdkafka::types::RDKafkaErrorCode,
    },
}

/// Creates `topics` on `brokers` with `partitions` each (replication 1), leaving existing
/// ones alone.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<(), AdminError> {
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

/// librdkafka's mock cluster, one broker, in this process (see the module docs). It
/// serves real TCP on 127.0.0.1 for as long as the value lives.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts the cluster with `topics` of `partitions` partitions each.
    pub fn start(topics: &[&str], partitions: i32) -> Result<Self, AdminError> {
        let cluster = MockCluster::new(1).map_err(|source| AdminError::Kafka {
            what: "starting the embedded Kafka broker".into(),
            source,
        })?;
        for t in topics {
            cluster
                .create_topic(t, partitions, 1)
                .map_err(|source| AdminError::Kafka {
                    what: format!("creating topic {t}"),
                    source,
                })?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
