//! Avro in the Confluent wire format, from Kafka Connect schemas.
//!
//! The worker describes every key and value with a Connect schema (the one
//! `json-with-schema` embeds). For Avro that schema is translated the way
//! Connect's `AvroConverter` translates it, so consumers using Confluent's
//! deserializers (or Debezium's Avro tooling) read our topics unchanged:
//!
//! | Connect | Avro |
//! |---|---|
//! | struct `a.b.Name` | record `Name` in namespace `a.b` (names sanitised to `[A-Za-z0-9_]`) |
//! | optional field | union `["null", T]` with default `null` |
//! | int8 / int16 / int32 / int64 | int (`connect.type` int8/int16) / int / long |
//! | float32 / float64, boolean, string | float / double, boolean, string |
//! | bytes; `Decimal` | bytes; bytes with `logicalType: decimal`, `precision`, `scale` |
//! | array | array |
//!
//! A named Connect type keeps its name in `connect.name` (e.g.
//! `io.debezium.time.Date`). A record defined twice in one schema (the
//! envelope's `before` and `after`) is referenced by name the second time,
//! as Avro requires. Values arrive as the JSON the other formats write;
//! bytes and decimals are base64 there and raw bytes here.
//!
//! Wire format: byte 0, the registry's schema id as 4 bytes big-endian, then
//! the Avro binary encoding of the datum.

use std::collections::{HashMap, HashSet};

use apache_avro::types::Value as AvroValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// A value does not fit its schema, or the schema is not translatable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AvroError {
    /// The Connect schema has a shape this translation does not know.
    #[error("unsupported Connect schema at {path}: {detail}")]
    Schema {
        /// Where in the schema.
        path: String,
        /// What.
        detail: String,
    },
    /// A value does not match its schema.
    #[error("value at {path} does not match its Avro schema: {detail}")]
    Value {
        /// Where in the value.
        path: String,
        /// What.
        detail: String,
    },
    /// apache-avro refused the schema or the datum.
    #[error("avro: {0}")]
    Avro(String),
}

/// An Avro name: letters, digits and `_`, not starting with a digit.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Avro schema (as JSON) of a Connect schema.
pub fn avro_schema(connect: &Value) -> Result<Value, AvroError> {
    let mut defined = HashSet::new();
    let mut anonymous = 0;
    translate(connect, "$", &mut defined, &mut anonymous)
}

fn translate(
    connect: &Value,
    path: &str,
    defined: &mut HashSet<String>,
    anonymous: &mut usize,
) -> Result<Value, AvroError> {
    let type_ = connect.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = connect.get("name").and_then(Value::as_str);
    let with_connect_name = |mut avro: Map<String, Value>| -> Value {
        if let Some(name) = name {
            avro.insert("connect.name".to_owned(), json!(name));
            if let Some(version) = connect.get("version") {
                avro.insert("connect.version".to_owned(), version.clone());
            }
            if let Some(parameters) = connect.get("parameters") {
                avro.insert("connect.parameters".to_owned(), parameters.clone());
            }
        }
        Value::Object(avro)
    };
    let primitive = |avro_type: &str| -> Value {
        let mut map = Map::new();
        map.insert("type".to_owned(), json!(avro_type));
        if name.is_none() {
            return json!(avro_type);
        }
        with_connect_name(map)
    };
    Ok(match type_ {
        "boolean" => primitive("boolean"),
        "int8" | "int16" => {
            let mut map = Map::new();
            map.insert("type".to_owned(), json!("int"));
            map.insert("connect.type".to_owned(), json!(type_));
            with_connect_name(map)
        }
        "int32" => primitive("int"),
        "int64" => primitive("long"),
        "float32" | "float" => primitive("float"),
        "float64" | "double" => primitive("double"),
        "string" => primitive("string"),
        "bytes" if name == Some("org.apache.kafka.connect.data.Decimal") => {
            let parameters = connect.get("parameters");
            let number = |key: &str| {
                parameters
                    .and_then(|p| p.get(key))
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
            };
            let scale = number("scale").ok_or_else(|| AvroError::Schema {
                path: path.to_owned(),
                detail: "Decimal without a scale parameter".to_owned(),
            })?;
            let precision = number("connect.decimal.precision").unwrap_or(64);
            let mut map = Map::new();
            map.insert("type".to_owned(), json!("bytes"));
            map.insert("logicalType".to_owned(), json!("decimal"));
            map.insert("precision".to_owned(), json!(precision));
            map.insert("scale".to_owned(), json!(scale));
            with_connect_name(map)
        }
        "bytes" => primitive("bytes"),
        "array" => {
            let items = connect.get("items").ok_or_else(|| AvroError::Schema {
                path: path.to_owned(),
                detail: "array without items".to_owned(),
            })?;
            let items = optional(items, translate(items, &format!("{path}[]"), defined, anonymous)?);
            json!({"type": "array", "items": items})
        }
        "struct" => translate_struct(connect, name, path, defined, anonymous, with_connect_name)?,
        other => {
            return Err(AvroError::Schema {
                path: path.to_owned(),
                detail: format!("type {other:?}"),
            });
        }
    })
}

/// A Connect struct as an Avro record (or a reference to one already defined).
fn translate_struct(
    connect: &Value,
    name: Option<&str>,
    path: &str,
    defined: &mut HashSet<String>,
    anonymous: &mut usize,
    with_connect_name: impl Fn(Map<String, Value>) -> Value,
) -> Result<Value, AvroError> {
    let full = name.map_or_else(
        || {
            *anonymous += 1;
            format!("ConnectDefault{anonymous}")
        },
        str::to_owned,
    );
    let (namespace, short) = match full.rsplit_once('.') {
        Some((namespace, short)) => (
            namespace.split('.').map(sanitize).collect::<Vec<_>>().join("."),
            sanitize(short),
        ),
        None => (String::new(), sanitize(&full)),
    };
    let qualified = if namespace.is_empty() {
        short.clone()
    } else {
        format!("{namespace}.{short}")
    };
    if !defined.insert(qualified.clone()) {
        return Ok(json!(qualified));
    }
    let mut fields = Vec::new();
    for field in connect
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field_name = field.get("field").and_then(Value::as_str).unwrap_or_default();
        let avro = translate(field, &format!("{path}.{field_name}"), defined, anonymous)?;
        let is_optional = field.get("optional").and_then(Value::as_bool).unwrap_or(false);
        let mut entry = json!({"name": sanitize(field_name), "type": optional(field, avro)});
        if is_optional {
            entry["default"] = Value::Null;
        }
        fields.push(entry);
    }
    let mut map = Map::new();
    map.insert("type".to_owned(), json!("record"));
    map.insert("name".to_owned(), json!(short));
    if !namespace.is_empty() {
        map.insert("namespace".to_owned(), json!(namespace));
    }
    map.insert("fields".to_owned(), Value::Array(fields));
    Ok(with_connect_name(map))
}

/// `["null", avro]` when the Connect schema is optional.
fn optional(connect: &Value, avro: Value) -> Value {
    if connect.get("optional").and_then(Value::as_bool).unwrap_or(false) {
        json!(["null", avro])
    } else {
        avro
    }
}

/// An Avro schema ready to encode values: parsed by apache-avro, plus the
/// named records for references.
#[derive(Debug, Clone)]
pub struct AvroWriter {
    json: Value,
    schema: apache_avro::Schema,
    records: HashMap<String, Value>,
}

impl AvroWriter {
    /// Prepares the Avro schema `json` (as produced by [`avro_schema`]).
    pub fn new(json: Value) -> Result<Self, AvroError> {
        let schema = apache_avro::Schema::parse(&json).map_err(|e| AvroError::Avro(e.to_string()))?;
        let mut records = HashMap::new();
        collect_records(&json, "", &mut records);
        Ok(Self {
            json,
            schema,
            records,
        })
    }

    /// The schema text to register.
    pub fn schema_text(&self) -> String {
        self.json.to_string()
    }

    /// The Avro binary encoding of `value` (JSON as the other formats write it).
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, AvroError> {
        let datum = self.datum(&self.json, value, "$")?;
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(datum))
            .map_err(|e| AvroError::Avro(e.to_string()))
    }

    fn datum(&self, schema: &Value, value: &Value, path: &str) -> Result<AvroValue, AvroError> {
        let mismatch = |detail: &str| AvroError::Value {
            path: path.to_owned(),
            detail: format!("{detail}, got {value}"),
        };
        match schema {
            Value::String(name) => match name.as_str() {
                "null" => Ok(AvroValue::Null),
                "boolean" => value
                    .as_bool()
                    .map(AvroValue::Boolean)
                    .ok_or_else(|| mismatch("expected a boolean")),
                "int" => value
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .map(AvroValue::Int)
                    .ok_or_else(|| mismatch("expected a 32-bit integer")),
                "long" => value
                    .as_i64()
                    .map(AvroValue::Long)
                    .ok_or_else(|| mismatch("expected an integer")),
                // Narrowing to f32 is what a float32 column holds anyway.
                #[allow(clippy::cast_possible_truncation)]
                "float" => value
                    .as_f64()
                    .map(|f| AvroValue::Float(f as f32))
                    .ok_or_else(|| mismatch("expected a number")),
                "double" => value
                    .as_f64()
                    .map(AvroValue::Double)
                    .ok_or_else(|| mismatch("expected a number")),
                "string" => value
                    .as_str()
                    .map(|s| AvroValue::String(s.to_owned()))
                    .ok_or_else(|| mismatch("expected a string")),
                "bytes" => base64_bytes(value)
                    .map(AvroValue::Bytes)
                    .ok_or_else(|| mismatch("expected base64")),
                record => {
                    let definition = self
                        .records
                        .get(record)
                        .ok_or_else(|| mismatch("unknown named type"))?;
                    self.datum(definition, value, path)
                }
            },
            Value::Array(branches) => {
                if value.is_null() {
                    let index = branches
                        .iter()
                        .position(|b| b == "null")
                        .ok_or_else(|| mismatch("null not allowed"))?;
                    return Ok(AvroValue::Union(
                        u32::try_from(index).unwrap_or(0),
                        Box::new(AvroValue::Null),
                    ));
                }
                let (index, branch) = branches
                    .iter()
                    .enumerate()
                    .find(|(_, b)| *b != "null")
                    .ok_or_else(|| mismatch("union without a non-null branch"))?;
                let inner = self.datum(branch, value, path)?;
                Ok(AvroValue::Union(
                    u32::try_from(index).unwrap_or(0),
                    Box::new(inner),
                ))
            }
            Value::Object(map) => self.datum_object(map, value, path),
            _ => Err(mismatch("unsupported schema")),
        }
    }

    /// A value for a schema written as an object (record, array, decimal, or a wrapped type).
    fn datum_object(
        &self,
        map: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) -> Result<AvroValue, AvroError> {
        let mismatch = |detail: &str| AvroError::Value {
            path: path.to_owned(),
            detail: format!("{detail}, got {value}"),
        };
        match map.get("type") {
            Some(Value::String(t)) if t == "record" => {
                let object = value.as_object().ok_or_else(|| mismatch("expected an object"))?;
                let mut fields = Vec::new();
                for field in map.get("fields").and_then(Value::as_array).into_iter().flatten() {
                    let name = field.get("name").and_then(Value::as_str).unwrap_or_default();
                    let field_type = field.get("type").unwrap_or(&Value::Null);
                    // Field names were sanitised; values keep the original names.
                    let field_value = object
                        .get(name)
                        .or_else(|| object.iter().find(|(k, _)| sanitize(k) == name).map(|(_, v)| v))
                        .unwrap_or(&Value::Null);
                    fields.push((
                        name.to_owned(),
                        self.datum(field_type, field_value, &format!("{path}.{name}"))?,
                    ));
                }
                Ok(AvroValue::Record(fields))
            }
            Some(Value::String(t)) if t == "array" => {
                let items = value.as_array().ok_or_else(|| mismatch("expected an array"))?;
                let item_schema = map.get("items").unwrap_or(&Value::Null);
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.datum(item_schema, item, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(AvroValue::Array)
            }
            Some(Value::String(t)) if t == "bytes" && map.get("logicalType") == Some(&json!("decimal")) => {
                base64_bytes(value)
                    .map(|bytes| AvroValue::Decimal(apache_avro::Decimal::from(bytes)))
                    .ok_or_else(|| mismatch("expected base64 of a decimal"))
            }
            Some(inner @ Value::String(_)) => self.datum(inner, value, path),
            _ => Err(mismatch("unsupported schema")),
        }
    }
}

fn base64_bytes(value: &Value) -> Option<Vec<u8>> {
    value.as_str().and_then(|s| BASE64.decode(s).ok())
}

/// Every record definition in `schema`, by full name.
fn collect_records(schema: &Value, namespace: &str, out: &mut HashMap<String, Value>) {
    match schema {
        Value::Array(branches) => branches.iter().for_each(|b| collect_records(b, namespace, out)),
        Value::Object(map) => {
            let namespace = map.get("namespace").and_then(Value::as_str).unwrap_or(namespace);
            if map.get("type") == Some(&json!("record")) {
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                let full = if namespace.is_empty() {
                    name.to_owned()
                } else {
                    format!("{namespace}.{name}")
                };
                out.insert(full, schema.clone());
                for field in map.get("fields").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(field_type) = field.get("type") {
                        collect_records(field_type, namespace, out);
                    }
                }
            }
            if let Some(items) = map.get("items") {
                collect_records(items, namespace, out);
            }
        }
        _ => {}
    }
}

/// `0x00`, the schema id (big-endian), the datum: Confluent's wire format.
pub fn wire_format(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;

    use super::*;
    use crate::debezium::row::Column;
    use crate::debezium::schema::{envelope_schema, key_schema};
    use crate::debezium::value::PgType;

    fn columns() -> Vec<Column> {
        vec![
            Column::new("id", PgType::Int4, true),
            Column::new("price", PgType::Numeric(Some((10, 2))), false),
            Column::new("tags", PgType::Array(Box::new(PgType::Text)), false),
            Column::new("small", PgType::Int2, false),
        ]
    }

    #[test]
    fn the_envelope_translates_and_round_trips() {
        let connect = envelope_schema("shop-1", "public", "products", &columns());
        let avro = avro_schema(&connect).unwrap();
        assert_eq!(avro["name"], "Envelope");
        assert_eq!(avro["namespace"], "shop_1.public.products");
        // `after` refers to the record `before` defined.
        assert_eq!(
            avro["fields"][1]["type"],
            json!(["null", "shop_1.public.products.Value"])
        );
        let writer = AvroWriter::new(avro).unwrap();
        let payload = json!({
            "before": null,
            "after": {"id": 1, "price": "AfvP", "tags": ["a", null], "small": 3},
            "source": {"version": "v", "connector": "postgresql", "name": "shop-1", "ts_ms": 1,
                       "snapshot": "false", "db": "shop", "sequence": null, "ts_us": 1, "ts_ns": 1,
                       "schema": "public", "table": "products", "txId": 7, "lsn": 9, "xmin": null,
                       "origin": null, "origin_lsn": null},
            "op": "c", "ts_ms": 2, "ts_us": 2, "ts_ns": 2, "transaction": null
        });
        let bytes = writer.encode(&payload).unwrap();
        let decoded = GenericDatumReader::builder(&writer.schema)
            .build()
            .unwrap()
            .read_value(&mut bytes.as_slice())
            .unwrap();
        let AvroValue::Record(fields) = decoded else {
            panic!()
        };
        assert!(
            fields.contains(&("op".to_owned(), AvroValue::String("c".into()))),
            "{fields:?}"
        );
        let AvroValue::Union(1, after) = &fields[1].1 else {
            panic!("{:?}", fields[1])
        };
        let AvroValue::Record(after) = &**after else {
            panic!()
        };
        assert_eq!(after[0], ("id".to_owned(), AvroValue::Int(1)));
        let AvroValue::Union(1, price) = &after[1].1 else {
            panic!()
        };
        assert_eq!(
            **price,
            AvroValue::Decimal(apache_avro::Decimal::from(vec![0x01, 0xfb, 0xcf]))
        );
    }

    #[test]
    fn keys_and_types_follow_the_avro_converter() {
        let key = avro_schema(&key_schema("shop", "public", "products", &columns())).unwrap();
        assert_eq!(key["fields"], json!([{"name": "id", "type": "int"}]));
        let value = avro_schema(&envelope_schema("shop", "public", "products", &columns())).unwrap();
        let after = &value["fields"][0]["type"][1];
        let price = &after["fields"][1]["type"][1];
        assert_eq!(price["logicalType"], "decimal");
        assert_eq!(
            (price["precision"].as_u64(), price["scale"].as_u64()),
            (Some(10), Some(2))
        );
        assert_eq!(after["fields"][3]["type"][1]["connect.type"], "int16");
    }

    #[test]
    fn a_mismatched_value_names_its_path() {
        let writer =
            AvroWriter::new(avro_schema(&key_schema("shop", "public", "t", &columns())).unwrap()).unwrap();
        let error = writer.encode(&json!({"id": "one"})).unwrap_err().to_string();
        assert!(error.contains("$.id"), "{error}");
    }

    #[test]
    fn wire_format_is_magic_byte_id_datum() {
        assert_eq!(wire_format(258, &[7]), vec![0, 0, 0, 1, 2, 7]);
        assert_eq!(sanitize("cdc-bikes.x"), "cdc_bikes_x");
        assert_eq!(sanitize("1st"), "_1st");
    }
}
