//! Avro records as a consumer using the registry reads them: the schema by
//! the id in the Confluent wire format, decoded with apache-avro (not the
//! worker's own decoder, so the tests check the encoding independently).

use tributary_registry::RegistryClient;

/// Decodes a Confluent wire-format record with the schema the registry holds for its id.
pub async fn decode_avro(registry: &RegistryClient, bytes: &[u8]) -> apache_avro::types::Value {
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let definition = registry.schema_by_id(i64::from(id)).await.unwrap();
    let schema = apache_avro::Schema::parse_str(&definition.schema).unwrap();
    apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut &bytes[5..])
        .unwrap()
}

/// Field `name` of an Avro record, unwrapped from its optional union.
pub fn field<'a>(record: &'a apache_avro::types::Value, name: &str) -> &'a apache_avro::types::Value {
    use apache_avro::types::Value as Avro;
    let Avro::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    let value = &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1;
    match value {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}
