//! A `Stream` manifest, checked and planned: what the stream runtime needs.
//!
//! Loading is the same as for connectors (files with manifests, the
//! `KafkaCluster` next to it or `--bootstrap-servers`), plus the query
//! planned by `tributary_sql` so a bad query stops the worker before it
//! touches Kafka, with the line and column in the error.

use std::collections::BTreeSet;

use tributary_api::connector::Format;
use tributary_api::stream::{ProcessingGuarantee, StreamInput, StreamInputKind, StreamSpec};
use tributary_api::{KafkaCluster, Stream};
use tributary_kafka::KafkaConnection;
use tributary_registry::RegistryClient;
use tributary_sql::{Plan, PlanOptions, Projection};

use super::output::OutputLayout;
use crate::config::{ConfigError, LoadOptions, chosen_cluster, kafka_connection, parse_kind, registry};

/// Everything a worker needs to run a stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// `<namespace>/<name>` (or `<name>`): the key in the status topic.
    pub id: String,
    /// The stream as declared.
    pub stream: Stream,
    /// The planned query.
    pub plan: Plan,
    /// Consumer group, also the prefix of internal topics.
    pub group_id: String,
    /// Output topic (`spec.output.topic` or the query's `INSERT INTO`).
    pub output_topic: String,
    /// How to reach Kafka (secrets resolved).
    pub kafka: KafkaConnection,
    /// The schema registry, when one is configured.
    pub registry: Option<RegistryClient>,
    /// Shapes of output keys and values.
    pub output: OutputLayout,
}

impl StreamConfig {
    /// The spec.
    pub fn spec(&self) -> &StreamSpec {
        &self.stream.spec
    }

    /// How `topic` is read (defaults for topics `spec.inputs` does not list).
    pub fn input(&self, topic: &str) -> StreamInput {
        self.spec()
            .inputs
            .iter()
            .find(|i| i.topic == topic)
            .cloned()
            .unwrap_or_else(|| StreamInput {
                topic: topic.to_owned(),
                ..StreamInput::default()
            })
    }

    /// Whether the stream runs with Kafka transactions.
    pub fn exactly_once(&self) -> bool {
        self.spec().processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    /// Internal topic carrying records keyed by their group to the partition owning it.
    pub fn repartition_topic(&self) -> String {
        format!("{}-repartition", self.group_id)
    }

    /// Internal compacted topic holding aggregate state.
    pub fn changelog_topic(&self) -> String {
        format!("{}-changelog", self.group_id)
    }
}

/// Reads the files; `Ok(None)` when they hold no `Stream` (a connector then).
pub fn load(options: &LoadOptions) -> Result<Option<StreamConfig>, ConfigError> {
    let mut streams: Vec<Stream> = Vec::new();
    let mut clusters: Vec<KafkaCluster> = Vec::new();
    for path in &options.files {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        streams.append(&mut parse_kind(path, &text, "Stream")?);
        clusters.append(&mut parse_kind(path, &text, "KafkaCluster")?);
    }
    let stream = match streams.len() {
        0 => return Ok(None),
        1 => streams.remove(0),
        n => {
            return Err(ConfigError::Connectors(format!(
                "{n} Stream documents found; a worker runs exactly one"
            )));
        }
    };
    let checked = validate(&stream)?;
    let cluster_ref = stream.spec.cluster_ref.as_ref();
    let cluster = chosen_cluster(cluster_ref, &clusters);
    let kafka = kafka_connection(cluster_ref, cluster, &clusters, options)?;
    let output = &stream.spec.output.format;
    let avro = stream
        .spec
        .inputs
        .iter()
        .flat_map(|i| [i.format.key, i.format.value])
        .chain([output.key, output.value])
        .any(|f| f == Format::Avro);
    let registry = registry(avro, cluster, options)?;
    let name = stream
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "stream".to_owned());
    let (id, default_group) = match stream.metadata.namespace.as_deref() {
        Some(namespace) => (
            format!("{namespace}/{name}"),
            format!("tributary-{namespace}-{name}"),
        ),
        None => (name.clone(), format!("tributary-{name}")),
    };
    let group_id = stream.spec.group_id.clone().unwrap_or(default_group);
    Ok(Some(StreamConfig {
        id,
        plan: checked.plan,
        output_topic: checked.output_topic,
        output: checked.output,
        group_id,
        kafka,
        registry,
        stream,
    }))
}

/// A stream spec that can run.
#[derive(Debug)]
pub struct Checked {
    /// The query's plan.
    pub plan: Plan,
    /// The output topic.
    pub output_topic: String,
    /// Shapes of output keys and values.
    pub output: OutputLayout,
}

/// What the planner needs from `spec.inputs`: event-time fields and tables.
fn plan_options(spec: &StreamSpec) -> Result<PlanOptions, ConfigError> {
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        field: field.to_owned(),
        message,
    };
    let mut options = PlanOptions::default();
    let mut seen = BTreeSet::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        if !seen.insert(input.topic.as_str()) {
            return Err(invalid(
                &format!("spec.inputs[{i}].topic"),
                format!("{} is listed twice", input.topic),
            ));
        }
        if input.kind == StreamInputKind::Table {
            options.tables.insert(input.topic.clone());
        } else if input.max_table_bytes.is_some() {
            return Err(invalid(
                &format!("spec.inputs[{i}].maxTableBytes"),
                "applies to inputs of kind Table only".to_owned(),
            ));
        }
        if let Some(field) = &input.timestamp_field {
            if field.split('.').any(str::is_empty) {
                return Err(invalid(
                    &format!("spec.inputs[{i}].timestampField"),
                    "a dotted path of field names, e.g. after.created_at".to_owned(),
                ));
            }
            options
                .timestamp_fields
                .insert(input.topic.clone(), field.clone());
        }
    }
    Ok(options)
}

/// Checks the spec and plans its query (pure).
pub fn validate(stream: &Stream) -> Result<Checked, ConfigError> {
    let spec = &stream.spec;
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        field: field.to_owned(),
        message,
    };
    let options = plan_options(spec)?;
    let plan =
        tributary_sql::parse_and_plan(&spec.sql, &options).map_err(|e| invalid("spec.sql", e.to_string()))?;
    let topics = plan.input_topics();
    for (i, input) in spec.inputs.iter().enumerate() {
        if !topics.contains(&input.topic) {
            return Err(invalid(
                &format!("spec.inputs[{i}].topic"),
                format!(
                    "the query does not read {}; it reads {}",
                    input.topic,
                    topics.join(", ")
                ),
            ));
        }
    }
    let output_topic = match (spec.output.topic.as_deref(), plan.output_topic()) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "spec.output.topic",
                format!("{a} differs from the query's INSERT INTO {b}; set one of them"),
            ));
        }
        (Some(topic), _) | (None, Some(topic)) => topic.to_owned(),
        (None, None) => {
            return Err(invalid(
                "spec.output.topic",
                "required: set it or write the query as INSERT INTO <topic> SELECT …".to_owned(),
            ));
        }
    };
    if topics.contains(&output_topic) {
        return Err(invalid(
            "spec.output.topic",
            format!("{output_topic} is also an input; a stream writing into its own input would loop"),
        ));
    }
    let columns = plan.column_names();
    for (i, key) in spec.output.key.iter().enumerate() {
        if matches!(plan.projection, Projection::Wildcard) {
            return Err(invalid(
                "spec.output.key",
                "needs named output columns; SELECT * keeps the input key".to_owned(),
            ));
        }
        if !columns.contains(&key.as_str()) {
            return Err(invalid(
                &format!("spec.output.key[{i}]"),
                format!(
                    "{key} is not an output column; the query's columns are {}",
                    columns.join(", ")
                ),
            ));
        }
    }
    let output = super::output::layout(&plan, &spec.output)?;
    Ok(Checked {
        plan,
        output_topic,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(spec: &str) -> Stream {
        serde_yaml::from_str(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: alerts\nspec:\n{spec}"
        ))
        .unwrap()
    }

    #[test]
    fn a_bad_query_names_the_field_line_and_column() {
        let error = validate(&stream(
            "  sql: |\n    SELECT x\n    FROM ratings WHERE\n  output: {topic: out}\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("spec.sql: line 2, column 19: expected an expression"),
            "{error}"
        );
    }

    #[test]
    fn output_topic_comes_from_the_spec_or_insert_into() {
        let checked = validate(&stream("  sql: INSERT INTO low SELECT * FROM ratings\n")).unwrap();
        assert_eq!(checked.output_topic, "low");
        let error = validate(&stream(
            "  sql: INSERT INTO low SELECT * FROM ratings\n  output: {topic: other}\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("spec.output.topic: other differs"), "{error}");
        let error = validate(&stream("  sql: SELECT * FROM ratings\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("spec.output.topic: required"), "{error}");
    }

    #[test]
    fn inputs_and_keys_must_match_the_query() {
        let error = validate(&stream(
            "  sql: SELECT a FROM ratings\n  output: {topic: o, key: [b]}\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("spec.output.key[0]: b is not an output column; the query's columns are a"),
            "{error}"
        );
        let error = validate(&stream(
            "  sql: SELECT a FROM ratings\n  output: {topic: o}\n  inputs: [{topic: orders}]\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("spec.inputs[0].topic: the query does not read orders"),
            "{error}"
        );
        let error = validate(&stream(
            "  sql: SELECT a FROM ratings\n  output: {topic: ratings}\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("would loop"), "{error}");
    }

    #[test]
    fn table_inputs_reach_the_planner_and_max_table_bytes_needs_a_table() {
        let join = "  sql: SELECT o.id, c.name FROM orders o JOIN customers c ON o.cid = c.ROWKEY\n  output: {topic: out}\n";
        // Without kind: Table, customers is a stream, which has no lookup by key.
        let error = validate(&stream(join)).unwrap_err().to_string();
        assert!(error.contains("c is a stream: c.ROWKEY"), "{error}");
        assert!(error.contains("spec.inputs[].kind: Table"), "{error}");
        let checked = validate(&stream(&format!(
            "{join}  inputs:\n    - topic: customers\n      kind: Table\n      maxTableBytes: 1048576\n"
        )))
        .unwrap();
        assert_eq!(checked.plan.sources[1].kind, tributary_sql::InputKind::Table);
        let error = validate(&stream(&format!(
            "{join}  inputs:\n    - topic: orders\n      maxTableBytes: 1048576\n"
        )))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("spec.inputs[0].maxTableBytes: applies to inputs of kind Table only"),
            "{error}"
        );
    }
}
