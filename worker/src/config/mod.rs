//! The worker's configuration: one `Connector` resource and the Kafka it
//! writes to, read from YAML files.
//!
//! Data model: the files hold Kubernetes manifests (several documents per
//! file allowed). Exactly one is a `Connector`; a `KafkaCluster` may sit next
//! to it (its `clusterRef`, or the only one), otherwise `--bootstrap-servers`
//! names a plaintext Kafka. The operator mounts the same YAML from a
//! ConfigMap (without secrets), so both modes share this loader. Secret
//! references resolve through [`secrets::SecretResolver`].
//!
//! Loading is parse (serde, which names unknown or mistyped fields) →
//! [`validate`] (pure; rules the CRD states in CEL, repeated here because a
//! standalone file never passes an apiserver) → [`WorkerConfig`].

pub mod secrets;

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use tributary_api::connector::{DatagenSource, ErrorHandling, ErrorTolerance, Format, PostgresSource};
use tributary_api::sink::SinkSpec;
use tributary_api::{ClusterRef, Connector, KafkaCluster};
use tributary_kafka::KafkaConnection;
use tributary_registry::{RegistryAuth, RegistryClient};

pub use self::secrets::{SecretError, SecretResolver};
use crate::sink::http::{HttpSinkConfig, HttpSinkError};
use crate::sink::opensearch::OpenSearchConfig;
use crate::sink::postgres::{PostgresSinkConfig, PostgresSinkError};
use crate::sink::tls::{TlsError, TlsMaterial};
use crate::transform::{TransformChain, TransformConfigError};

/// Everything a worker needs to run its connector.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `<namespace>/<name>` (or `<name>` without a namespace): the key of the
    /// connector's records in the offsets and status topics.
    pub id: String,
    /// The connector as declared.
    pub connector: Connector,
    /// The validated source or sink.
    pub role: Role,
    /// How to reach Kafka (secrets resolved).
    pub kafka: KafkaConnection,
    /// The schema registry, when one is configured.
    pub registry: Option<RegistryClient>,
}

/// What the connector does: read from outside into Kafka, or the reverse.
#[derive(Debug, Clone)]
pub enum Role {
    /// A source connector.
    Source(Source),
    /// A sink connector.
    Sink(Box<SinkConfig>),
}

/// A sink connector, validated, with its secrets resolved.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The `spec.sink` block as declared.
    pub spec: SinkSpec,
    /// The consumer group: `spec.sink.groupId`, else
    /// `tributary-<namespace>-<name>` (`tributary-<name>` standalone).
    pub group_id: String,
    /// `spec.errors`.
    pub errors: ErrorHandling,
    /// `spec.transforms`, compiled.
    pub transforms: TransformChain,
    /// The target system.
    pub target: Target,
}

/// The system a sink writes into (one arm per target type).
#[derive(Debug, Clone)]
pub enum Target {
    /// OpenSearch or Elasticsearch.
    OpenSearch(OpenSearchConfig),
    /// A PostgreSQL table.
    Postgres(PostgresSinkConfig),
    /// An HTTP endpoint.
    Http(HttpSinkConfig),
}

/// The connector's source, validated.
#[derive(Debug, Clone)]
pub enum Source {
    /// Postgres CDC.
    Postgres(Box<PostgresConfig>),
    /// Generated records.
    Datagen(DatagenSource),
}

/// A Postgres source with its password resolved and its table filters compiled.
#[derive(Clone)]
pub struct PostgresConfig {
    /// The spec as declared.
    pub spec: PostgresSource,
    /// The password, if any (never logged: `Debug` redacts it).
    pub password: Option<String>,
    /// Compiled `tableIncludeList`.
    pub include: Vec<Regex>,
    /// Compiled `tableExcludeList`.
    pub exclude: Vec<Regex>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("spec", &self.spec)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// True when `<schema>.<table>` is captured by the include/exclude lists.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(&name)))
            && !self.exclude.iter().any(|r| r.is_match(&name))
    }

    /// Connection parameters for tokio-postgres (key=value form).
    pub fn tokio_postgres_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.spec.host)
            .port(self.spec.port)
            .dbname(&self.spec.database)
            .user(&self.spec.user)
            .application_name("tributary-worker")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// The URL form for the replication connection (`replication=database`).
    pub fn replication_url(&self) -> String {
        let escape = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        let credentials = match &self.password {
            Some(password) => format!("{}:{}", escape(&self.spec.user), escape(password)),
            None => escape(&self.spec.user),
        };
        format!(
            "postgresql://{credentials}@{}:{}/{}?replication=database&application_name=tributary-worker",
            self.spec.host,
            self.spec.port,
            escape(&self.spec.database)
        )
    }
}

/// Why the configuration cannot be used. Messages name the file and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not match its kind's schema.
    #[error("{path}: {kind}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `Connector`, `KafkaCluster` or `document`.
        kind: String,
        /// serde's message, naming the field and position.
        message: String,
    },
    /// No `Connector` document, or more than one.
    #[error("{0}")]
    Connectors(String),
    /// A field's value is not allowed.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `spec.source.postgres.tableIncludeList[0]`.
        field: String,
        /// What is allowed.
        message: String,
    },
    /// A Secret reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A sink target block is not usable (the message names the field).
    #[error("{0}")]
    Target(String),
    /// The Kafka connection settings are not usable.
    #[error("KafkaCluster {cluster}: {source}")]
    Kafka {
        /// Name of the KafkaCluster.
        cluster: String,
        /// Why.
        #[source]
        source: tributary_kafka::ConnectionError,
    },
}

/// Where to read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// YAML files holding the Connector (and optionally its KafkaCluster).
    pub files: Vec<PathBuf>,
    /// Plaintext brokers to use when no KafkaCluster document is given.
    pub bootstrap_servers: Option<String>,
    /// Schema registry URL to use when no KafkaCluster document names one.
    pub schema_registry_url: Option<String>,
    /// How secret references resolve.
    pub secrets: SecretResolver,
}

/// Reads, parses and validates the configuration.
pub fn load(options: &LoadOptions) -> Result<WorkerConfig, ConfigError> {
    let mut connectors = Vec::new();
    let mut clusters = Vec::new();
    for path in &options.files {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let (mut c, mut k) = parse_documents(path, &text)?;
        connectors.append(&mut c);
        clusters.append(&mut k);
    }
    let connector = match connectors.len() {
        1 => connectors.remove(0),
        0 => {
            return Err(ConfigError::Connectors(
                "no Connector document found (expected `kind: Connector`, `apiVersion: tributary.dev/v1alpha1`)"
                    .to_owned(),
            ));
        }
        n => {
            return Err(ConfigError::Connectors(format!(
                "{n} Connector documents found; a worker runs exactly one"
            )));
        }
    };
    let role = validate_role(&connector, &options.secrets)?;
    let cluster_ref = connector.spec.cluster_ref.as_ref();
    let cluster = chosen_cluster(cluster_ref, &clusters);
    let kafka = kafka_connection(cluster_ref, cluster, &clusters, options)?;
    let registry = registry(avro_format(&connector), cluster, options)?;
    let id = match connector.metadata.namespace.as_deref() {
        Some(namespace) => format!("{namespace}/{}", connector_name(&connector)),
        None => connector_name(&connector).to_owned(),
    };
    Ok(WorkerConfig {
        id,
        connector,
        role,
        kafka,
        registry,
    })
}

fn avro_format(connector: &Connector) -> bool {
    [connector.spec.format.key, connector.spec.format.value].contains(&Format::Avro)
}

fn connector_name(connector: &Connector) -> &str {
    connector.metadata.name.as_deref().unwrap_or("connector")
}

/// Splits a file into its documents and parses the Tributary ones.
pub fn parse_documents(path: &Path, text: &str) -> Result<(Vec<Connector>, Vec<KafkaCluster>), ConfigError> {
    Ok((
        parse_kind(path, text, "Connector")?,
        parse_kind(path, text, "KafkaCluster")?,
    ))
}

/// Parses the documents of one `kind` in a file (other kinds, e.g. Secrets or
/// Topics, may share it).
pub fn parse_kind<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    kind: &str,
) -> Result<Vec<T>, ConfigError> {
    let mut parsed = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            kind: "document".to_owned(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        if value.get("kind").and_then(serde_yaml::Value::as_str) == Some(kind) {
            parsed.push(serde_yaml::from_value(value).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                kind: kind.to_owned(),
                message: e.to_string(),
            })?);
        }
    }
    Ok(parsed)
}

/// Validates the source or the sink (exactly one is set), and `spec.errors`.
pub fn validate_role(connector: &Connector, secrets: &SecretResolver) -> Result<Role, ConfigError> {
    let spec = &connector.spec;
    let errors = &spec.errors;
    if errors.dead_letter_topic.is_some() && errors.tolerance != ErrorTolerance::All {
        return Err(ConfigError::Invalid {
            field: "spec.errors.deadLetterTopic".to_owned(),
            message:
                "needs spec.errors.tolerance All (with None the connector stops at the first bad record)"
                    .to_owned(),
        });
    }
    if errors.retry.initial_delay_ms > errors.retry.max_delay_ms {
        return Err(ConfigError::Invalid {
            field: "spec.errors.retry.initialDelayMs".to_owned(),
            message: "must not exceed spec.errors.retry.maxDelayMs".to_owned(),
        });
    }
    match (&spec.source, &spec.sink) {
        (Some(_), None) if !spec.transforms.is_empty() => Err(ConfigError::Invalid {
            field: "spec.transforms".to_owned(),
            message: "applied by sink connectors only so far; remove it from this source".to_owned(),
        }),
        (Some(_), None) => validate(connector, secrets).map(Role::Source),
        (None, Some(sink)) => validate_sink(connector, sink, secrets).map(|s| Role::Sink(Box::new(s))),
        _ => Err(ConfigError::Invalid {
            field: "spec".to_owned(),
            message: "set exactly one of source or sink".to_owned(),
        }),
    }
}

/// Checks a sink: topics, group, batch limits and its one target block.
fn validate_sink(
    connector: &Connector,
    sink: &SinkSpec,
    secrets: &SecretResolver,
) -> Result<SinkConfig, ConfigError> {
    let invalid = |field: &str, message: &str| ConfigError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    if sink.topics.is_empty() {
        return Err(invalid("spec.sink.topics", "list at least one topic"));
    }
    for (i, topic) in sink.topics.iter().enumerate() {
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                &format!("spec.sink.topics[{i}]"),
                "a Kafka topic name: 1-249 letters, digits, '.', '_' and '-'",
            ));
        }
    }
    let batch = &sink.batch;
    if !(1..=100_000).contains(&batch.max_records) {
        return Err(invalid("spec.sink.batch.maxRecords", "must be 1 to 100000"));
    }
    if !(1024..=104_857_600).contains(&batch.max_bytes) {
        return Err(invalid("spec.sink.batch.maxBytes", "must be 1024 to 104857600"));
    }
    if batch.linger_ms > 60_000 {
        return Err(invalid("spec.sink.batch.lingerMs", "must be 0 to 60000"));
    }
    if !(1..=64).contains(&batch.max_in_flight) {
        return Err(invalid("spec.sink.batch.maxInFlight", "must be 1 to 64"));
    }
    let target = match (&sink.opensearch, &sink.postgres, &sink.http) {
        (Some(opensearch), None, None) => {
            let field = "spec.sink.opensearch";
            let url = &opensearch.url;
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .filter(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            let Some(rest) = rest else {
                return Err(invalid(
                    &format!("{field}.url"),
                    "must be an http:// or https:// URL, e.g. https://opensearch:9200",
                ));
            };
            if rest
                .split('/')
                .next()
                .is_some_and(|authority| authority.contains('@'))
            {
                return Err(invalid(
                    &format!("{field}.url"),
                    "must not hold credentials: use basicAuth with a Secret",
                ));
            }
            if let Some(index) = &opensearch.index
                && (index.is_empty()
                    || index.starts_with(['-', '_', '+'])
                    || index
                        .chars()
                        .any(|c| c.is_ascii_uppercase() || r#"\/*?"<>| ,#:"#.contains(c)))
            {
                return Err(invalid(
                    &format!("{field}.index"),
                    "an index name: lower case, not starting with '-', '_' or '+', without spaces or \\/*?\"<>|,#:",
                ));
            }
            let password = opensearch
                .basic_auth
                .as_ref()
                .map(|auth| {
                    secrets.resolve(
                        &format!("{field}.basicAuth.passwordSecretRef"),
                        &auth.password_secret_ref,
                    )
                })
                .transpose()?;
            let tls = TlsMaterial::resolve(&format!("{field}.tls"), opensearch.tls.as_ref(), secrets)
                .map_err(|e| match e {
                    TlsError::Secret(e) => ConfigError::Secret(e),
                    TlsError::Invalid { field, message } => ConfigError::Invalid { field, message },
                })?;
            Target::OpenSearch(OpenSearchConfig {
                spec: opensearch.clone(),
                password,
                tls,
            })
        }
        (None, Some(postgres), None) => Target::Postgres(
            PostgresSinkConfig::new(postgres.clone(), secrets).map_err(|e| match e {
                PostgresSinkError::Secret(e) => ConfigError::Secret(e),
                other @ PostgresSinkError::Invalid { .. } => ConfigError::Target(other.to_string()),
            })?,
        ),
        (None, None, Some(http)) => {
            Target::Http(HttpSinkConfig::new(http.clone(), secrets).map_err(|e| match e {
                HttpSinkError::Secret(e) => ConfigError::Secret(e),
                other @ HttpSinkError::Invalid { .. } => ConfigError::Target(other.to_string()),
            })?)
        }
        _ => {
            return Err(invalid(
                "spec.sink",
                "set exactly one of opensearch, postgres or http",
            ));
        }
    };
    let name = connector_name(connector);
    let group_id = sink
        .group_id
        .clone()
        .unwrap_or_else(|| match &connector.metadata.namespace {
            Some(namespace) => format!("tributary-{namespace}-{name}"),
            None => format!("tributary-{name}"),
        });
    let transforms = TransformChain::new(&connector.spec.transforms).map_err(|e| match e {
        TransformConfigError::Invalid { field, message } => ConfigError::Invalid { field, message },
    })?;
    Ok(SinkConfig {
        spec: sink.clone(),
        group_id,
        errors: connector.spec.errors.clone(),
        transforms,
        target,
    })
}

/// Checks what the CRD's CEL rules check on Kubernetes, and resolves secrets.
pub fn validate(connector: &Connector, secrets: &SecretResolver) -> Result<Source, ConfigError> {
    let invalid = |field: &str, message: &str| ConfigError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let Some(source) = &connector.spec.source else {
        return Err(invalid(
            "spec.source",
            "required: set exactly one of postgres or datagen",
        ));
    };
    match (&source.postgres, &source.datagen) {
        (Some(postgres), None) => {
            let field = "spec.source.postgres";
            if postgres.topic_prefix.is_empty()
                || !postgres
                    .topic_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(
                    &format!("{field}.topicPrefix"),
                    "must be non-empty letters, digits, '.', '_' and '-'",
                ));
            }
            if !postgres
                .slot_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                || postgres.slot_name.is_empty()
            {
                return Err(invalid(
                    &format!("{field}.slotName"),
                    "may contain lower-case letters, digits and '_' (a Postgres rule)",
                ));
            }
            let compile = |list: &[String], name: &str| -> Result<Vec<Regex>, ConfigError> {
                list.iter()
                    .enumerate()
                    .map(|(i, pattern)| {
                        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ConfigError::Invalid {
                            field: format!("{field}.{name}[{i}]"),
                            message: format!("not a regular expression: {e}"),
                        })
                    })
                    .collect()
            };
            let include = compile(&postgres.table_include_list, "tableIncludeList")?;
            let exclude = compile(&postgres.table_exclude_list, "tableExcludeList")?;
            if postgres.publication_autocreate == tributary_api::connector::PublicationAutocreate::Filtered
                && include.is_empty()
            {
                return Err(invalid(
                    &format!("{field}.tableIncludeList"),
                    "required when publicationAutocreate is Filtered: the publication lists these tables",
                ));
            }
            let password = postgres
                .password
                .as_ref()
                .map(|r| secrets.resolve(&format!("{field}.password"), r))
                .transpose()?;
            Ok(Source::Postgres(Box::new(PostgresConfig {
                spec: postgres.clone(),
                password,
                include,
                exclude,
            })))
        }
        (None, Some(datagen)) => {
            if datagen.topic.is_empty() {
                return Err(invalid("spec.source.datagen.topic", "required"));
            }
            Ok(Source::Datagen(datagen.clone()))
        }
        _ => Err(invalid("spec.source", "set exactly one of postgres or datagen")),
    }
}

/// The KafkaCluster a connector or stream refers to (or the only one given).
pub(crate) fn chosen_cluster<'a>(
    cluster_ref: Option<&ClusterRef>,
    clusters: &'a [KafkaCluster],
) -> Option<&'a KafkaCluster> {
    match cluster_ref.map(|r| r.name.as_str()) {
        Some(name) => clusters.iter().find(|c| c.metadata.name.as_deref() == Some(name)),
        None if clusters.len() == 1 => clusters.first(),
        None => None,
    }
}

/// The schema registry client: the cluster's `schemaRegistry`, else
/// `--schema-registry-url`; required when a format is Avro (`avro`).
pub(crate) fn registry(
    avro: bool,
    cluster: Option<&KafkaCluster>,
    options: &LoadOptions,
) -> Result<Option<RegistryClient>, ConfigError> {
    let timeout = std::time::Duration::from_secs(30);
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        field: field.to_owned(),
        message,
    };
    let client = match (
        cluster.and_then(|c| c.spec.schema_registry.as_ref()),
        &options.schema_registry_url,
    ) {
        (Some(spec), _) => {
            let auth = spec
                .basic_auth
                .as_ref()
                .map(|basic| -> Result<RegistryAuth, ConfigError> {
                    Ok(RegistryAuth {
                        username: basic.username.clone(),
                        password: options.secrets.resolve(
                            "KafkaCluster spec.schemaRegistry.basicAuth.passwordSecretRef",
                            &basic.password_secret_ref,
                        )?,
                    })
                })
                .transpose()?;
            let ca = spec
                .ca_secret_ref
                .as_ref()
                .map(|r| {
                    options
                        .secrets
                        .resolve("KafkaCluster spec.schemaRegistry.caSecretRef", r)
                })
                .transpose()?;
            Some(
                RegistryClient::new(&spec.url, auth, ca.as_deref(), timeout)
                    .map_err(|e| invalid("KafkaCluster spec.schemaRegistry", e.to_string()))?,
            )
        }
        (None, Some(url)) => Some(
            RegistryClient::new(url, None, None, timeout)
                .map_err(|e| invalid("--schema-registry-url", e.to_string()))?,
        ),
        (None, None) => None,
    };
    if avro && client.is_none() {
        return Err(invalid(
            "spec.format",
            "avro needs a schema registry: set spec.schemaRegistry on the KafkaCluster or pass --schema-registry-url"
                .to_owned(),
        ));
    }
    Ok(client)
}

/// How to reach Kafka: the chosen KafkaCluster, else `--bootstrap-servers`.
pub(crate) fn kafka_connection(
    cluster_ref: Option<&ClusterRef>,
    cluster: Option<&KafkaCluster>,
    clusters: &[KafkaCluster],
    options: &LoadOptions,
) -> Result<KafkaConnection, ConfigError> {
    let wanted = cluster_ref.map(|r| r.name.as_str());
    match (cluster, &options.bootstrap_servers) {
        (Some(cluster), _) => {
            let name = cluster.metadata.name.clone().unwrap_or_default();
            KafkaConnection::from_spec(&cluster.spec, |r| {
                options
                    .secrets
                    .resolve("KafkaCluster secret", r)
                    .map_err(|e| format!("set environment variable {}", e.env_var))
            })
            .map_err(|source| ConfigError::Kafka {
                cluster: name,
                source,
            })
        }
        (None, Some(bootstrap)) => Ok(KafkaConnection::plaintext(bootstrap)),
        (None, None) => Err(ConfigError::Invalid {
            field: "spec.clusterRef".to_owned(),
            message: match wanted {
                Some(name) => format!(
                    "KafkaCluster {name:?} is not among the files given; add its manifest with -f or pass --bootstrap-servers"
                ),
                None if clusters.is_empty() => {
                    "no KafkaCluster given: add its manifest with -f or pass --bootstrap-servers".to_owned()
                }
                None => "several KafkaClusters given: set spec.clusterRef.name".to_owned(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTOR: &str = "\
apiVersion: tributary.dev/v1alpha1
kind: Connector
metadata:
  name: shop-cdc
  namespace: shop
spec:
  source:
    postgres:
      host: 127.0.0.1
      database: shop
      user: cdc
      topicPrefix: shop
      tableIncludeList: ['public\\.orders', 'public\\.order_.*']
";

    const CLUSTER: &str = "\
apiVersion: tributary.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: main
spec:
  bootstrapServers: ['10.0.0.1:9092']
";

    fn load_text(text: &str, bootstrap: Option<&str>) -> Result<WorkerConfig, ConfigError> {
        let (connectors, clusters) = parse_documents(Path::new("test.yaml"), text)?;
        let connector = connectors.into_iter().next().unwrap();
        let options = LoadOptions {
            bootstrap_servers: bootstrap.map(str::to_owned),
            ..LoadOptions::default()
        };
        let role = validate_role(&connector, &options.secrets)?;
        let cluster_ref = connector.spec.cluster_ref.as_ref();
        let cluster = chosen_cluster(cluster_ref, &clusters);
        let kafka = kafka_connection(cluster_ref, cluster, &clusters, &options)?;
        let registry = registry(avro_format(&connector), cluster, &options)?;
        Ok(WorkerConfig {
            id: String::new(),
            connector,
            role,
            kafka,
            registry,
        })
    }

    const SINK: &str = "\
apiVersion: tributary.dev/v1alpha1
kind: Connector
metadata:
  name: ratings-search
  namespace: shop
spec:
  sink:
    topics: [ratings]
    opensearch:
      url: http://opensearch:9200
";

    #[test]
    fn a_sink_gets_its_group_and_target() {
        let config = load_text(SINK, Some("k:1")).unwrap();
        let Role::Sink(sink) = config.role else {
            panic!("a sink")
        };
        assert_eq!(sink.group_id, "tributary-shop-ratings-search");
        assert_eq!(sink.spec.batch.max_records, 1000);
        assert_eq!(sink.errors.tolerance, ErrorTolerance::None);
        assert!(sink.errors.context_headers);
        assert!(matches!(sink.target, Target::OpenSearch(_)));
    }

    #[test]
    fn sink_errors_name_the_field() {
        let cases = [
            (
                SINK.replace("http://opensearch:9200", "http://admin:pw@opensearch:9200"),
                "spec.sink.opensearch.url: must not hold credentials",
            ),
            (
                SINK.replace("http://opensearch:9200", "opensearch:9200"),
                "spec.sink.opensearch.url: must be an http:// or https:// URL",
            ),
            (
                SINK.replace("    topics: [ratings]\n", "    topics: [ratings, 'bad topic']\n"),
                "spec.sink.topics[1]: a Kafka topic name",
            ),
            (
                format!("{SINK}  errors:\n    deadLetterTopic: dlq\n"),
                "spec.errors.deadLetterTopic: needs spec.errors.tolerance All",
            ),
            (
                SINK.replace(
                    "      url: http://opensearch:9200\n",
                    "      url: http://opensearch:9200\n      index: Ratings\n",
                ),
                "spec.sink.opensearch.index: an index name",
            ),
        ];
        for (text, expected) in cases {
            let message = load_text(&text, Some("k:1")).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("pw@"), "{message}");
        }
        let bad_filter = format!("{SINK}  transforms:\n    - filter: {{expression: 'rating <'}}\n");
        let message = load_text(&bad_filter, Some("k:1")).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.transforms[0].filter.expression: "),
            "{message}"
        );
        let on_source = format!("{CONNECTOR}  transforms:\n    - filter: {{expression: 'a < 3'}}\n");
        let message = load_text(&on_source, Some("k:1")).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.transforms: applied by sink connectors only"),
            "{message}"
        );
        let both = format!("{SINK}  source:\n    datagen:\n      dataset: Ratings\n      topic: r\n");
        let message = load_text(&both, Some("k:1")).unwrap_err().to_string();
        assert_eq!(message, "spec: set exactly one of source or sink");
    }

    #[test]
    fn the_opensearch_password_comes_from_a_secret() {
        let text = SINK.replace(
            "      url: http://opensearch:9200\n",
            "      url: http://opensearch:9200\n      basicAuth: {username: w, passwordSecretRef: {name: cfg-test-os, key: password}}\n",
        );
        let message = load_text(&text, Some("k:1")).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.sink.opensearch.basicAuth.passwordSecretRef: "),
            "{message}"
        );
        assert!(
            message.contains("TRIBUTARY_SECRET_CFG_TEST_OS_PASSWORD"),
            "{message}"
        );
    }

    #[test]
    fn a_kafka_cluster_in_the_same_file_is_used() {
        let config = load_text(&format!("{CONNECTOR}---\n{CLUSTER}"), None).unwrap();
        assert_eq!(config.kafka.bootstrap_servers(), "10.0.0.1:9092");
        let Role::Source(Source::Postgres(pg)) = config.role else {
            panic!()
        };
        assert!(pg.captures("public", "orders"));
        assert!(pg.captures("public", "order_items"));
        assert!(!pg.captures("public", "customers"));
        assert!(
            !pg.captures("public", "orders_archive"),
            "patterns match the whole name"
        );
    }

    #[test]
    fn without_a_cluster_the_error_says_what_to_add() {
        let message = load_text(CONNECTOR, None).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.clusterRef: no KafkaCluster given"),
            "{message}"
        );
        let config = load_text(CONNECTOR, Some("127.0.0.1:19092")).unwrap();
        assert_eq!(config.kafka.bootstrap_servers(), "127.0.0.1:19092");
    }

    #[test]
    fn avro_needs_a_registry() {
        let text = format!("{CONNECTOR}  format: {{key: json, value: avro}}\n");
        let message = load_text(&text, Some("k:1")).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.format: avro needs a schema registry"),
            "{message}"
        );
        let with_registry = format!("{text}---\n{CLUSTER}  schemaRegistry:\n    url: http://registry:8081\n");
        let config = load_text(&with_registry, None).unwrap();
        assert_eq!(config.registry.unwrap().base_url(), "http://registry:8081/");
    }

    #[test]
    fn a_bad_pattern_names_its_list_position() {
        let text = CONNECTOR.replace("'public\\.order_.*'", "'public.(orders'");
        let message = load_text(&text, Some("k:1")).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.source.postgres.tableIncludeList[1]: not a regular expression"),
            "{message}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_file_and_field() {
        let text = CONNECTOR.replace("      user: cdc\n", "      user: cdc\n      slot: x\n");
        let message = parse_documents(Path::new("shop.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("shop.yaml: Connector: "), "{message}");
        assert!(message.contains("unknown field `slot`"), "{message}");
    }

    #[test]
    fn the_password_comes_from_a_secret_and_is_never_printed() {
        let text = CONNECTOR.replace(
            "      user: cdc\n",
            "      user: cdc\n      password: {name: cfg-test-pg, key: password}\n",
        );
        let (connectors, _) = parse_documents(Path::new("t.yaml"), &text).unwrap();
        let missing = validate(&connectors[0], &SecretResolver::default())
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("TRIBUTARY_SECRET_CFG_TEST_PG_PASSWORD"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("tributary-cfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cfg-test-pg")).unwrap();
        std::fs::write(dir.join("cfg-test-pg").join("password"), "hunter2").unwrap();
        let resolver = SecretResolver {
            dir: Some(dir.clone()),
            ..SecretResolver::default()
        };
        let Source::Postgres(pg) = validate(&connectors[0], &resolver).unwrap() else {
            panic!()
        };
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(pg.password.as_deref(), Some("hunter2"));
        assert!(!format!("{pg:?}").contains("hunter2"));
        assert!(pg.replication_url().contains("cdc:hunter2@"));
    }
}
