//! Connector controller on the real control plane and Kafka: what a user
//! sees after `kubectl apply` — the worker Deployment, its ConfigMap and
//! ServiceAccount, secrets as `secretKeyRef` only, rolls on spec edits and
//! Secret rotation, Stopped scaling to zero, lag measured from the consumer
//! group, and the CEL rules. The workers themselves do not run here (kwok
//! only marks pods Running); `connector_pipeline.rs` runs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{CONVERGE, Harness, condition, config_hash};
use tributary_api::Connector;
use tributary_testkit::{eventually, unique_name};

fn secret_yaml(password: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: pg\nstringData:\n  password: {password}\n")
}

fn sink_yaml(name: &str, topic: &str, extra: &str) -> String {
    format!(
        r"
apiVersion: tributary.dev/v1alpha1
kind: Connector
metadata:
  name: {name}
spec:
  replicas: 2
  sink:
    topics: [{topic}]
    postgres:
      host: db.example
      database: reports
      user: writer
      password: {{name: pg, key: password}}
{extra}"
    )
}

async fn produce(bootstrap: &str, topic: &str, count: usize) {
    let admin = tributary_kafka::KafkaAdmin::new(
        &tributary_kafka::KafkaConnection::plaintext(bootstrap),
        Duration::from_secs(10),
    )
    .unwrap();
    admin
        .create_topic(topic, 3, None, &std::collections::BTreeMap::new())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for i in 0..count {
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&format!("k{i}"))
                    .payload(&format!("{{\"n\":{i}}}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

/// The Deployment, ConfigMap and ServiceAccount of Connector `name`: locked
/// down, owned, secrets by reference only.
async fn assert_children(harness: &Harness, deployment: &Deployment, name: &str) {
    let spec = deployment.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.clone().unwrap();
    let container = &pod.containers[0];
    let env = container.env.clone().unwrap();
    let password = env
        .iter()
        .find(|e| e.name == "TRIBUTARY_SECRET_PG_PASSWORD")
        .unwrap();
    assert!(password.value.is_none(), "secret values never inline");
    assert_eq!(
        password.value_from.clone().unwrap().secret_key_ref.unwrap().name,
        "pg"
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        container
            .security_context
            .clone()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    let owner = &deployment.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Connector", name));
    let config: ConfigMap = harness.api().get("reports-connector").await.unwrap();
    let config_yaml = &config.data.unwrap()["config.yaml"];
    assert!(config_yaml.contains("kind: KafkaCluster") && config_yaml.contains("kind: Connector"));
    assert!(!config_yaml.contains("first-secret-value"), "{config_yaml}");
    let _: ServiceAccount = harness.api().get("reports-connector").await.unwrap();
}

#[tokio::test]
async fn a_sink_connector_runs_as_a_locked_down_deployment_and_reports_lag() {
    let mut harness = Harness::new("e2e-conn").await;
    harness.start_operator();
    let topic = unique_name("conn-in");
    let name = "reports";
    harness.apply(&secret_yaml("first-secret-value")).await.unwrap();
    harness.apply(&sink_yaml(name, &topic, "")).await.unwrap();

    // Children: Deployment, ConfigMap and ServiceAccount named <name>-connector.
    let deployments: Api<Deployment> = harness.api();
    let deployment = eventually("deployment created", CONVERGE, || async {
        Ok(deployments.get_opt("reports-connector").await?)
    })
    .await
    .unwrap();
    assert_children(&harness, &deployment, name).await;

    // Status: lineage, selector and lag of the (not yet consuming) group.
    produce(&harness.endpoints.kafka_bootstrap, &topic, 25).await;
    let connector = harness
        .wait_for::<Connector>(name, "lag of 25 records", |c| {
            c.status
                .as_ref()
                .and_then(|s| s.lag.as_ref())
                .and_then(|l| l.records)
                == Some(25)
        })
        .await;
    let status = connector.status.unwrap();
    assert_eq!(status.topics.unwrap().reads, vec![topic.clone()]);
    assert_eq!(status.desired_replicas, 2);
    assert!(
        status
            .selector
            .unwrap()
            .contains("app.kubernetes.io/instance=reports")
    );
    assert!(status.lag.unwrap().summary.starts_with("25 records"));
    let (dependencies, _, message) = condition(Some(&status.conditions), "DependenciesReady").unwrap();
    assert_eq!(dependencies, "True", "{message}");

    // A spec edit rolls the pods; pausing changes the live config only.
    let first_hash = config_hash(&deployment);
    harness
        .apply(&sink_yaml(name, &topic, "  errors: {tolerance: All}\n"))
        .await
        .unwrap();
    let edited = eventually("pod template hash changes", CONVERGE, || async {
        let d = deployments.get("reports-connector").await?;
        Ok((config_hash(&d) != first_hash).then_some(d))
    })
    .await
    .unwrap();
    let edited_hash = config_hash(&edited);
    harness
        .apply(&sink_yaml(
            name,
            &topic,
            "  errors: {tolerance: All}\n  state: Paused\n",
        ))
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = harness.api();
    eventually("config map says Paused", CONVERGE, || async {
        let c = config_maps.get("reports-connector").await?;
        Ok(c.data.unwrap()["config.yaml"]
            .contains("state: Paused")
            .then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        config_hash(&deployments.get("reports-connector").await.unwrap()),
        edited_hash,
        "pausing keeps the pods"
    );

    // Rotating the Secret rolls the pods.
    harness.apply(&secret_yaml("rotated-secret-value")).await.unwrap();
    eventually("rotation changes the hash", CONVERGE, || async {
        let d = deployments.get("reports-connector").await?;
        Ok((config_hash(&d) != edited_hash).then_some(()))
    })
    .await
    .unwrap();

    assert_stopped_scales_to_zero(&harness, name, &topic).await;
    harness.cleanup().await;
}

#[tokio::test]
async fn a_missing_secret_is_named_with_its_field_and_bad_manifests_are_refused() {
    let mut harness = Harness::new("e2e-conn-bad").await;
    harness.start_operator();
    let topic = unique_name("conn-bad");
    harness.apply(&sink_yaml("nosecret", &topic, "")).await.unwrap();
    let connector = harness
        .wait_for::<Connector>("nosecret", "SecretNotFound", |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|x| x.reason == "SecretNotFound"))
        })
        .await;
    let (_, _, message) = condition(Some(&connector.status.unwrap().conditions), "Ready").unwrap();
    assert!(
        message.contains("spec.sink.postgres.password") && message.contains("pg"),
        "{message}"
    );
    let deployments: Api<Deployment> = harness.api();
    assert!(deployments.get_opt("nosecret-connector").await.unwrap().is_none());

    // Creating the Secret lets it proceed without touching the Connector.
    harness.apply(&secret_yaml("x")).await.unwrap();
    eventually("deployment after the secret appears", CONVERGE, || async {
        Ok(deployments.get_opt("nosecret-connector").await?)
    })
    .await
    .unwrap();

    // The apiserver refuses a source with two workers, with the CEL message.
    let error = harness
        .apply(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: twice\nspec:\n  replicas: 2\n  source:\n    datagen: {dataset: Ratings, topic: r}\n",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spec.replicas of a source connector must be 0 or 1"),
        "{error}"
    );
    // ...and a Connector that is both a source and a sink.
    let error = harness
        .apply(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: both\nspec:\n  source:\n    datagen: {dataset: Ratings, topic: r}\n  sink:\n    topics: [r]\n    http: {url: 'http://127.0.0.1:9/'}\n",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spec must set exactly one of source or sink"),
        "{error}"
    );

    // Scale subresource: `kubectl scale connector nosecret --replicas=3`.
    let connectors: Api<Connector> = harness.api();
    connectors
        .patch_scale(
            "nosecret",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    eventually("scaled to 3", CONVERGE, || async {
        let d = deployments.get("nosecret-connector").await?;
        Ok((d.spec.unwrap().replicas == Some(3)).then_some(()))
    })
    .await
    .unwrap();

    // Deleting the Connector removes its children (owner references).
    connectors
        .delete("nosecret", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("children garbage-collected", CONVERGE, || async {
        let secret_kept: Option<Secret> = harness.api().get_opt("pg").await?;
        assert!(secret_kept.is_some(), "user's Secret is not a child");
        Ok(deployments
            .get_opt("nosecret-connector")
            .await?
            .is_none()
            .then_some(()))
    })
    .await
    .unwrap();
    harness.cleanup().await;
}

/// The worker's own config checks run at reconcile, with the referenced
/// Secrets' values: a CA that is not PEM is Stalled naming the field (and
/// never the value) before any Deployment exists; fixing the config runs it.
#[tokio::test]
async fn a_worker_config_error_is_stalled_with_its_field_before_any_pod() {
    let mut harness = Harness::new("e2e-conn-config").await;
    harness.start_operator();
    harness
        .apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: search-ca\nstringData:\n  ca.crt: not-a-certificate-4711\n")
        .await
        .unwrap();
    let topic = unique_name("conn-config");
    let connector = |tls: &str| {
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: search\nspec:\n  sink:\n    topics: [{topic}]\n    opensearch:\n      url: https://search.example:9200\n      index: ratings\n{tls}"
        )
    };
    harness
        .apply(&connector(
            "      tls:\n        caSecretRef: {name: search-ca, key: ca.crt}\n",
        ))
        .await
        .unwrap();
    let stalled = harness
        .wait_for::<Connector>("search", "Stalled: InvalidSpec", |c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|x| x.type_ == "Stalled" && x.status == "True" && x.reason == "InvalidSpec")
            })
        })
        .await;
    let (_, _, message) = condition(Some(&stalled.status.unwrap().conditions), "Stalled").unwrap();
    assert!(
        message.contains("spec.sink.opensearch.tls.caSecretRef") && message.contains("PEM"),
        "{message}"
    );
    assert!(
        !message.contains("4711"),
        "a secret value leaked into status: {message}"
    );
    let deployments: Api<Deployment> = harness.api();
    assert!(deployments.get_opt("search-connector").await.unwrap().is_none());

    harness.apply(&connector("")).await.unwrap();
    eventually("deployment once the config is valid", CONVERGE, || async {
        Ok(deployments.get_opt("search-connector").await?)
    })
    .await
    .unwrap();
    harness.cleanup().await;
}

/// `state: Stopped` scales the workers to zero and is Ready with reason Stopped.
async fn assert_stopped_scales_to_zero(harness: &Harness, name: &str, topic: &str) {
    let deployments: Api<Deployment> = harness.api();
    harness
        .apply(&sink_yaml(name, topic, "  state: Stopped\n"))
        .await
        .unwrap();
    let stopped = harness
        .wait_for::<Connector>(name, "Ready: Stopped", |c| {
            c.status.as_ref().is_some_and(|s| {
                s.observed_generation == c.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|x| x.type_ == "Ready" && x.reason == "Stopped")
            })
        })
        .await;
    assert_eq!(stopped.status.unwrap().desired_replicas, 0);
    assert_eq!(
        deployments
            .get("reports-connector")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
}
