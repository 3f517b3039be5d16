//! Output records: how a result row becomes key and value bytes.
//!
//! A key or value is a list of named fields (a result row's columns, the
//! columns `spec.output.key` names, or an aggregate's groups and window),
//! written either as one value (a single key column) or as an object.
//!
//! Plain JSON writes the fields as they are. Typed formats (`json-with-schema`,
//! `avro`) need a schema before the first record, so the fields' static types
//! from the plan ([`tributary_sql::TypedColumn`]) become a Kafka Connect
//! schema — every field optional, since any SQL value may be NULL — which is
//! registered for Avro under `<topic>-key` / `<topic>-value` like every other
//! producer in Tributary. A field whose type only the data would tell (a
//! bare `after.region`) is refused when the stream is checked, asking for a
//! `CAST`. Each value is cast to its field's type before encoding (`ROUND(x)`
//! returning 3 in a DOUBLE column is written as 3.0); a value that cannot be
//! cast makes the record bad (skipped and counted, like an evaluation error).

use serde_json::{Map, Value, json};
use tributary_api::connector::Format;
use tributary_api::stream::StreamOutput;
use tributary_sql::{Plan, Projection, SqlType};

use crate::config::ConfigError;
use crate::format::{self, PreparedSchema, Serializer};

/// What one key or value holds: fields with types (`None`: untyped, allowed
/// in plain JSON only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    fields: Vec<(String, Option<SqlType>)>,
    /// One field written as its bare value rather than an object.
    single: bool,
}

/// The output's key and value shapes, checked against the formats (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLayout {
    /// `None`: the input record's key is copied byte for byte.
    pub key: Option<Shape>,
    /// `None`: `SELECT *`, the input value as it is.
    pub value: Option<Shape>,
}

/// Builds the layout of `plan`'s output, refusing what a typed format
/// cannot write; errors name the field and what to change.
pub fn layout(plan: &Plan, output: &StreamOutput) -> Result<OutputLayout, ConfigError> {
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        field: field.to_owned(),
        message,
    };
    let columns = plan.output_types();
    let value = columns.as_ref().map(|columns| Shape {
        fields: columns.iter().map(|c| (c.name.clone(), c.sql_type)).collect(),
        single: false,
    });
    let column_type = |name: &str| {
        columns
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .and_then(|c| c.sql_type)
    };
    let key = if !output.key.is_empty() {
        Some(Shape {
            fields: output.key.iter().map(|k| (k.clone(), column_type(k))).collect(),
            single: output.key.len() == 1,
        })
    } else if let Some(aggregation) = plan.aggregation() {
        let mut fields: Vec<(String, Option<SqlType>)> = crate::stream::engine::group_names(plan)
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, plan.group_type(i)))
            .collect();
        if aggregation.window.is_some() {
            fields.push(("window_start".to_owned(), Some(SqlType::Timestamp)));
            fields.push(("window_end".to_owned(), Some(SqlType::Timestamp)));
        }
        Some(Shape {
            fields,
            single: false,
        })
    } else {
        None
    };
    let missing_value = "SELECT * copies the input value as it is; list the columns (with CASTs) for a typed format, or use json";
    let missing_key = "without spec.output.key the input record's key is copied byte for byte; name the key columns, or use json";
    for (shape, format, field, missing) in [
        (
            value.as_ref(),
            output.format.value,
            "spec.output.format.value",
            missing_value,
        ),
        (
            key.as_ref(),
            output.format.key,
            "spec.output.format.key",
            missing_key,
        ),
    ] {
        if format == Format::Json {
            continue;
        }
        let shape = shape.ok_or_else(|| invalid(field, format!("{}: {missing}", format_name(format))))?;
        check_typed(plan, shape, field, format)?;
    }
    Ok(OutputLayout { key, value })
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::JsonWithSchema => "json-with-schema",
        Format::Avro => "avro",
    }
}

/// Every field of `shape` needs a type for a typed format.
fn check_typed(plan: &Plan, shape: &Shape, field: &str, format: Format) -> Result<(), ConfigError> {
    let Some((name, _)) = shape.fields.iter().find(|(_, ty)| ty.is_none()) else {
        return Ok(());
    };
    let expression = expression_of(plan, name).unwrap_or_else(|| name.clone());
    Err(ConfigError::Invalid {
        field: field.to_owned(),
        message: format!(
            "{}: the type of column {name} is only known from the data; write CAST({expression} AS <type>) AS {name} \
             (types: BIGINT, DOUBLE, VARCHAR, BOOLEAN, TIMESTAMP)",
            format_name(format)
        ),
    })
}

/// The SQL text of the expression behind output column `name`.
fn expression_of(plan: &Plan, name: &str) -> Option<String> {
    let (columns, aggregation) = match &plan.projection {
        Projection::Wildcard => return None,
        Projection::Columns(columns) => (columns, None),
        Projection::Aggregate(aggregation) => (&aggregation.columns, Some(aggregation)),
    };
    let column = columns.iter().find(|c| c.name == name)?;
    let expr = match (&column.expr, aggregation) {
        (tributary_sql::Expr::Group(n), Some(aggregation)) => aggregation.group_by.get(*n)?,
        (expr, _) => expr,
    };
    // Plans show fields as `$<input>.path`; the query named them by alias (or
    // not at all with one input).
    let mut text = expr.to_string();
    for (i, source) in plan.sources.iter().enumerate() {
        let qualifier = if plan.sources.len() == 1 {
            String::new()
        } else {
            format!("{}.", source.alias.as_deref().unwrap_or(&source.topic))
        };
        text = text.replace(&format!("${i}."), &qualifier);
    }
    Some(text)
}

/// The Kafka Connect schema of a shape (typed fields only).
fn connect_schema(shape: &Shape, record_name: &str) -> Value {
    let field_schema = |ty: Option<SqlType>| {
        let mut schema = match ty {
            Some(SqlType::BigInt) => json!({"type": "int64"}),
            Some(SqlType::Double) => json!({"type": "float64"}),
            Some(SqlType::Boolean) => json!({"type": "boolean"}),
            Some(SqlType::Timestamp) => {
                json!({"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "version": 1})
            }
            Some(SqlType::String) | None => json!({"type": "string"}),
        };
        schema["optional"] = json!(true);
        schema
    };
    if shape.single
        && let [(_, ty)] = shape.fields.as_slice()
    {
        // A key of one column: a NULL key is not written (the row is bad).
        let mut schema = field_schema(*ty);
        schema["optional"] = json!(false);
        return schema;
    }
    let fields: Vec<Value> = shape
        .fields
        .iter()
        .map(|(name, ty)| {
            let mut schema = field_schema(*ty);
            schema["field"] = json!(name);
            schema
        })
        .collect();
    json!({"type": "struct", "fields": fields, "optional": false, "name": record_name})
}

/// Encodes keys or values of one shape in one format.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    shape: Shape,
    schema: PreparedSchema,
    /// For a plain JSON object: what precedes each field's value (`{"id":`,
    /// `,"rating":`, …), so a row is written without building a map first.
    field_heads: Option<Vec<Vec<u8>>>,
}

impl Encoder {
    /// Prepares the schema of `shape` for `subject` (registering it for Avro).
    pub async fn prepare(
        shape: Shape,
        serializer: &Serializer,
        subject: &str,
        record_name: &str,
    ) -> Result<Self, format::FormatError> {
        let schema = serializer
            .prepare(subject, &connect_schema(&shape, record_name))
            .await?;
        let field_heads = (matches!(schema, PreparedSchema::Json) && !shape.single).then(|| {
            shape
                .fields
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let mut head = vec![if i == 0 { b'{' } else { b',' }];
                    head.extend_from_slice(json!(name).to_string().as_bytes());
                    head.push(b':');
                    head
                })
                .collect()
        });
        Ok(Self {
            shape,
            schema,
            field_heads,
        })
    }

    /// A result row in plain JSON written straight from its column values
    /// (the filter/project hot path); `None` when this encoder needs more
    /// than that (a typed format, a single-field key, other columns).
    pub fn encode_row<'a>(
        &self,
        names: impl ExactSizeIterator<Item = &'a str>,
        values: &[Value],
    ) -> Option<Vec<u8>> {
        let heads = self.field_heads.as_ref()?;
        if heads.is_empty()
            || names.len() != self.shape.fields.len()
            || values.len() != heads.len()
            || !names.zip(&self.shape.fields).all(|(a, (b, _))| a == b)
        {
            return None;
        }
        let mut out = Vec::with_capacity(16 * heads.len() + 2);
        for (head, value) in heads.iter().zip(values) {
            out.extend_from_slice(head);
            // Writing a Value to a Vec cannot fail.
            serde_json::to_writer(&mut out, value).ok()?;
        }
        out.push(b'}');
        Some(out)
    }

    /// The bytes of the shape's fields taken from `fields` (missing ones are
    /// NULL); an error names the field whose value does not fit its type.
    pub fn encode(&self, fields: &Map<String, Value>) -> Result<Vec<u8>, String> {
        let typed = !matches!(self.schema, PreparedSchema::Json);
        if !typed
            && !self.shape.single
            && fields.len() == self.shape.fields.len()
            && fields.keys().zip(&self.shape.fields).all(|(a, (b, _))| a == b)
        {
            // A whole result row in plain JSON: written as it is (the hot path).
            return format::encode(&self.schema, fields).map_err(|e| e.to_string());
        }
        let value_of = |name: &str, ty: Option<SqlType>| -> Result<Value, String> {
            let value = fields.get(name).cloned().unwrap_or(Value::Null);
            match ty {
                Some(ty) if typed => {
                    tributary_sql::cast(value, ty).map_err(|e| format!("output column {name}: {e}"))
                }
                _ => Ok(value),
            }
        };
        let datum = if self.shape.single
            && let [(name, ty)] = self.shape.fields.as_slice()
        {
            value_of(name, *ty)?
        } else {
            let mut object = Map::with_capacity(self.shape.fields.len());
            for (name, ty) in &self.shape.fields {
                object.insert(name.clone(), value_of(name, *ty)?);
            }
            Value::Object(object)
        };
        format::encode(&self.schema, &datum).map_err(|e| e.to_string())
    }
}

/// The output's key and value encoders.
#[derive(Debug, Clone)]
pub(crate) struct OutputEncoders {
    /// `None`: keys are the input records' keys, copied.
    pub key: Option<Encoder>,
    /// `None`: `SELECT *`.
    pub value: Option<Encoder>,
}

impl OutputEncoders {
    /// Prepares both for `topic` (subjects `<topic>-key` and `<topic>-value`).
    pub async fn prepare(
        layout: &OutputLayout,
        output: &StreamOutput,
        registry: Option<&tributary_registry::RegistryClient>,
        topic: &str,
    ) -> Result<Self, format::FormatError> {
        let record = format!("tributary.{}", format::avro::sanitize(topic));
        let prepare = async |shape: Option<&Shape>, format: Format, part: &str| match shape {
            Some(shape) => {
                let serializer = Serializer::new(format, registry.cloned());
                let subject = format!("{topic}-{}", part.to_ascii_lowercase());
                Encoder::prepare(shape.clone(), &serializer, &subject, &format!("{record}.{part}"))
                    .await
                    .map(Some)
            }
            None => Ok(None),
        };
        let key = prepare(layout.key.as_ref(), output.format.key, "Key").await?;
        let value = prepare(layout.value.as_ref(), output.format.value, "Value").await?;
        Ok(Self { key, value })
    }

    /// The key from `fields` (a result row, or an aggregate's groups and
    /// window); `None` when keys are the input records' keys.
    pub fn key(&self, fields: &Map<String, Value>) -> Result<Option<Vec<u8>>, String> {
        self.key.as_ref().map(|key| key.encode(fields)).transpose()
    }

    /// The value of a result row whose columns are `names` with `values`,
    /// written without building a map, where keys are the input records'
    /// and the value is a plain JSON row; `None` otherwise (then
    /// [`Self::key`] and [`Self::value`] take the row as a map).
    pub fn plain_row<'a>(
        &self,
        names: impl ExactSizeIterator<Item = &'a str>,
        values: &[Value],
    ) -> Option<Vec<u8>> {
        if self.key.is_some() {
            return None;
        }
        self.value.as_ref()?.encode_row(names, values)
    }

    /// The value of a result row.
    pub fn value(&self, row: &Map<String, Value>) -> Result<Vec<u8>, String> {
        match &self.value {
            Some(value) => value.encode(row),
            // `SELECT *` copies input values without coming here; a row is plain JSON.
            None => format::encode(&PreparedSchema::Json, row).map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use tributary_sql::PlanOptions;

    use super::*;

    fn plan(sql: &str) -> Plan {
        tributary_sql::parse_and_plan(sql, &PlanOptions::default()).unwrap()
    }

    fn output(yaml: &str) -> StreamOutput {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn typed_formats_ask_for_a_cast_naming_the_column_and_expression() {
        let error = layout(
            &plan("SELECT after.region AS region, COUNT(*) AS n FROM r GROUP BY after.region"),
            &output("{topic: o, format: {value: avro}}"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("spec.output.format.value: avro: the type of column region is only known from the data; write CAST(after.region AS <type>) AS region"),
            "{error}"
        );
        let error = layout(
            &plan("SELECT * FROM r"),
            &output("{topic: o, format: {value: json-with-schema}}"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("SELECT * copies the input value"), "{error}");
        let error = layout(
            &plan("SELECT CAST(after.id AS BIGINT) AS id FROM r"),
            &output("{topic: o, format: {key: avro}}"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "spec.output.format.key: avro: without spec.output.key the input record's key is copied"
            ),
            "{error}"
        );
    }

    #[test]
    fn aggregate_keys_hold_groups_and_window_bounds() {
        let checked = layout(
            &plan(
                "SELECT CAST(after.region AS VARCHAR) AS region, COUNT(*) AS n FROM r \
                 WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY CAST(after.region AS VARCHAR)",
            ),
            &output("{topic: o, format: {key: avro, value: avro}}"),
        )
        .unwrap();
        let key = checked.key.unwrap();
        assert_eq!(
            connect_schema(&key, "k"),
            json!({"type": "struct", "optional": false, "name": "k", "fields": [
                {"field": "region", "type": "string", "optional": true},
                {"field": "window_start", "type": "int64", "optional": true,
                 "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
                {"field": "window_end", "type": "int64", "optional": true,
                 "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
            ]})
        );
    }

    async fn encoders(sql: &str, output_yaml: &str) -> OutputEncoders {
        let output = output(output_yaml);
        OutputEncoders::prepare(&layout(&plan(sql), &output).unwrap(), &output, None, "o")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_plain_json_row_is_written_without_a_map_exactly_as_with_one() {
        let sql = r#"SELECT after.id AS id, after.note AS "the ""note""", after.tags AS tags FROM r"#;
        let names = ["id", r#"the "note""#, "tags"];
        let values = [json!(7), json!("a\"b"), json!([1, {"x": null}])];
        let row: Map<String, Value> = names
            .iter()
            .map(|n| (*n).to_owned())
            .zip(values.clone())
            .collect();
        let plain = encoders(sql, "{topic: o}").await;
        let direct = plain.plain_row(names.into_iter(), &values).unwrap();
        assert_eq!(direct, plain.value(&row).unwrap());
        assert_eq!(direct, br#"{"id":7,"the \"note\"":"a\"b","tags":[1,{"x":null}]}"#);
        // Other columns than the layout's, a key to compute or a typed
        // format: the map path.
        assert!(
            plain
                .plain_row(["id", "x", "tags"].into_iter(), &values)
                .is_none()
        );
        assert!(
            plain
                .plain_row(names[..2].iter().copied(), &values[..2])
                .is_none()
        );
        let keyed = encoders(sql, "{topic: o, key: [id]}").await;
        assert!(keyed.plain_row(names.into_iter(), &values).is_none());
        let typed = encoders(
            "SELECT CAST(after.id AS BIGINT) AS id FROM r",
            "{topic: o, format: {value: json-with-schema}}",
        )
        .await;
        assert!(typed.plain_row(["id"].into_iter(), &[json!(7)]).is_none());
    }

    #[tokio::test]
    async fn typed_values_are_cast_and_plain_json_is_unchanged() {
        let sql = "SELECT CAST(after.rating AS DOUBLE) AS rating, after.note AS note, CAST(after.id AS BIGINT) AS id FROM r";
        let row: Map<String, Value> =
            serde_json::from_value(json!({"rating": 3, "note": "x", "id": 7})).unwrap();
        let plain = encoders(sql, "{topic: o, key: [id]}").await;
        assert_eq!(plain.value(&row).unwrap(), br#"{"rating":3,"note":"x","id":7}"#);
        assert_eq!(plain.key(&row).unwrap().unwrap(), b"7");
        let keyed = encoders(sql, "{topic: o, key: [id, rating]}").await;
        assert_eq!(keyed.key(&row).unwrap().unwrap(), br#"{"id":7,"rating":3}"#);

        let typed = encoders(
            "SELECT CAST(after.rating AS DOUBLE) AS rating, CAST(after.id AS BIGINT) AS id FROM r",
            "{topic: o, key: [id], format: {key: json-with-schema, value: json-with-schema}}",
        )
        .await;
        let key: Value = serde_json::from_slice(&typed.key(&row).unwrap().unwrap()).unwrap();
        assert_eq!(
            key,
            json!({"schema": {"type": "int64", "optional": false}, "payload": 7})
        );
        // 3 in a DOUBLE column is written as 3.0.
        let value: Value = serde_json::from_slice(&typed.value(&row).unwrap()).unwrap();
        assert_eq!(value["payload"], json!({"rating": 3.0, "id": 7}));
        let bad: Map<String, Value> = serde_json::from_value(json!({"rating": 1, "id": "seven"})).unwrap();
        let error = typed.key(&bad).unwrap_err();
        assert!(error.starts_with("output column id: cannot CAST"), "{error}");
    }
}
