//! Creating the topics a connector writes to, once per topic and process,
//! before the first record goes out (the broker may refuse auto-creation,
//! and librdkafka would otherwise retry an unknown topic until it times out).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tributary_api::connector::TopicCreation;
use tributary_kafka::{AdminError, KafkaAdmin, KafkaConnection};

use super::DeliveryError;

/// Creates missing topics as `TopicCreation` says; remembers the ones seen.
#[derive(Clone)]
pub struct TopicCreator {
    kafka: KafkaConnection,
    settings: TopicCreation,
    /// Topics known to exist; read on every record, so a plain `RwLock`.
    known: Arc<std::sync::RwLock<HashSet<String>>>,
    admin: Arc<Mutex<Option<Arc<KafkaAdmin>>>>,
}

impl std::fmt::Debug for TopicCreator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicCreator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TopicCreator {
    /// A creator for topics on `kafka`.
    pub fn new(kafka: KafkaConnection, settings: TopicCreation) -> Self {
        Self {
            kafka,
            settings,
            known: Arc::default(),
            admin: Arc::default(),
        }
    }

    /// Makes sure `topic` exists (creating it when allowed).
    pub async fn ensure(&self, topic: &str) -> Result<(), DeliveryError> {
        if self.known.read().is_ok_and(|known| known.contains(topic)) {
            return Ok(());
        }
        let admin = self.admin().await?;
        let failed = |e: AdminError| DeliveryError::Failed {
            topic: topic.to_owned(),
            message: e.to_string(),
        };
        if admin.describe_topic(topic).await.map_err(failed)?.is_none() {
            if !self.settings.enabled {
                return Err(DeliveryError::Failed {
                    topic: topic.to_owned(),
                    message: "the topic does not exist and spec.topicCreation.enabled is false; \
                              declare it as a Topic resource"
                        .to_owned(),
                });
            }
            match admin
                .create_topic(
                    topic,
                    self.settings.partitions,
                    self.settings.replication_factor,
                    &self.settings.configs,
                )
                .await
            {
                Ok(()) | Err(AdminError::TopicExists(_)) => {}
                Err(error) => return Err(failed(error)),
            }
        }
        if let Ok(mut known) = self.known.write() {
            known.insert(topic.to_owned());
        }
        Ok(())
    }

    async fn admin(&self) -> Result<Arc<KafkaAdmin>, DeliveryError> {
        let mut admin = self.admin.lock().await;
        if let Some(existing) = admin.as_ref() {
            return Ok(Arc::clone(existing));
        }
        let created = Arc::new(
            KafkaAdmin::new(&self.kafka, Duration::from_secs(30))
                .map_err(|e| DeliveryError::Create(e.to_string()))?,
        );
        *admin = Some(Arc::clone(&created));
        Ok(created)
    }
}
