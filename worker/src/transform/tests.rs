//! Whole chains, built from YAML as users write them, on Debezium change
//! events shaped exactly as the Postgres source (and Debezium) writes them.

use serde_json::{Value, json};
use tributary_api::transform::TransformSpec;

use super::{TransformChain, TransformConfigError, TransformError};
use crate::record::{Header, Record};

fn chain(yaml: &str) -> Result<TransformChain, TransformConfigError> {
    let specs: Vec<TransformSpec> = serde_yaml::from_str(yaml).unwrap();
    TransformChain::new(&specs)
}

fn config_error(yaml: &str) -> String {
    chain(yaml).unwrap_err().to_string()
}

/// A change event of `public.ratings` as the Postgres source writes it
/// (Debezium's envelope and `source` block).
#[allow(clippy::needless_pass_by_value)] // json! serialises by reference; callers build rows inline
fn rating_event(op: &str, before: Value, after: Value, offset: i64) -> Record {
    let id = after
        .get("id")
        .or_else(|| before.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    Record {
        topic: "shop.public.ratings".into(),
        partition: 0,
        offset,
        timestamp_ms: Some(1_700_000_000_005 + offset),
        key: Some(json!({ "id": id })),
        value: Some(json!({
            "before": before,
            "after": after,
            "source": {
                "version": "tributary-0.1.0",
                "connector": "postgresql",
                "name": "shop",
                "ts_ms": 1_700_000_000_000_i64 + offset,
                "ts_us": (1_700_000_000_000_i64 + offset) * 1000,
                "ts_ns": (1_700_000_000_000_i64 + offset) * 1_000_000,
                "snapshot": if op == "r" { "true" } else { "false" },
                "db": "shop",
                "sequence": "[\"24023928\",\"24023984\"]",
                "schema": "public",
                "table": "ratings",
                "txId": 770 + offset,
                "lsn": 24_023_984 + offset,
                "xmin": null
            },
            "op": op,
            "ts_ms": 1_700_000_000_005_i64 + offset,
            "ts_us": (1_700_000_000_005_i64 + offset) * 1000,
            "ts_ns": (1_700_000_000_005_i64 + offset) * 1_000_000,
            "transaction": null
        })),
        headers: Vec::new(),
    }
}

fn row(id: i64, rating: i64, region: &str) -> Value {
    json!({"id": id, "customer_id": 100 + id, "product_id": 7, "region": region, "rating": rating, "comment": "meh"})
}

/// The ratings system's low-rating notification chain (the product brief's
/// first pipeline): new row state, ratings below 3, marked for the notifier.
const LOW_RATINGS: &str = r"
- unwrap:
    addFields: [op, source.ts_ms]
- filter:
    expression: rating < 3 and region in ['eu', 'us']
- insertField:
    field: alert
    value: low-rating
- insertField:
    field: kafka_offset
    from: Offset
- dropFields:
    fields: [comment]
";

#[test]
fn ratings_low_rating_chain_on_debezium_events() {
    let chain = chain(LOW_RATINGS).unwrap();
    assert_eq!(chain.len(), 5);
    let events = vec![
        rating_event("r", json!(null), row(1, 2, "eu"), 0), // snapshot read, low: kept
        rating_event("c", json!(null), row(2, 5, "eu"), 1), // high: filtered
        rating_event("c", json!(null), row(3, 1, "apac"), 2), // low, other region: filtered
        rating_event("u", row(2, 5, "eu"), row(2, 1, "eu"), 3), // updated to low: kept
        rating_event("d", row(1, 2, "eu"), json!(null), 4), // delete: dropped by unwrap
        Record {
            value: None, // the tombstone after the delete: dropped by unwrap
            ..rating_event("d", row(1, 2, "eu"), json!(null), 5)
        },
    ];
    let out: Vec<Record> = events
        .into_iter()
        .filter_map(|r| chain.apply(r).unwrap())
        .collect();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(
        serde_json::to_string(out[0].value.as_ref().unwrap()).unwrap(),
        r#"{"id":1,"customer_id":101,"product_id":7,"region":"eu","rating":2,"__op":"r","__source_ts_ms":1700000000000,"alert":"low-rating","kafka_offset":0}"#
    );
    assert_eq!(out[0].key, Some(json!({"id": 1})));
    assert_eq!(
        out[1].value,
        Some(json!({
            "id": 2, "customer_id": 102, "product_id": 7, "region": "eu", "rating": 1,
            "__op": "u", "__source_ts_ms": 1_700_000_000_003_i64, "alert": "low-rating", "kafka_offset": 3
        }))
    );
    assert_eq!((out[1].topic.as_str(), out[1].offset), ("shop.public.ratings", 3));
}

#[test]
fn filter_on_the_envelope_before_unwrapping() {
    // Filter on envelope fields (`after.rating`, `op`), then unwrap deletes
    // to tombstones so an index removes the document.
    let chain = chain(
        "- filter: {expression: \"op == 'd' or after.rating < 3\"}\n\
         - unwrap: {deleteHandling: Tombstone}\n",
    )
    .unwrap();
    let low = chain
        .apply(rating_event("c", json!(null), row(1, 2, "eu"), 0))
        .unwrap()
        .unwrap();
    assert_eq!(low.value, Some(row(1, 2, "eu")));
    assert_eq!(
        chain
            .apply(rating_event("c", json!(null), row(2, 4, "eu"), 1))
            .unwrap(),
        None
    );
    let deleted = chain
        .apply(rating_event("d", row(1, 2, "eu"), json!(null), 2))
        .unwrap()
        .unwrap();
    assert_eq!((deleted.key, deleted.value), (Some(json!({"id": 1})), None));
}

#[test]
fn predicates_choose_which_records_a_transform_sees() {
    let chain = chain(
        r"
- predicate: {isTombstone: true}
  filter: {expression: 'false'}
- predicate: {topicMatches: 'shop\.public\.(.*)'}
  route: {regex: 'shop\.public\.(.*)', replacement: 'idx-$1'}
- predicate: {hasHeader: skip-flatten, negate: true}
  flatten: {}
",
    )
    .unwrap();
    let record = |topic: &str, value: Option<Value>, headers: Vec<Header>| Record {
        topic: topic.into(),
        partition: 1,
        offset: 9,
        timestamp_ms: None,
        key: None,
        value,
        headers,
    };
    assert_eq!(
        chain.apply(record("shop.public.orders", None, vec![])).unwrap(),
        None
    );
    let routed = chain
        .apply(record("shop.public.orders", Some(json!({"a": {"b": 1}})), vec![]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (routed.topic.as_str(), routed.value),
        ("idx-orders", Some(json!({"a_b": 1})))
    );
    let skipped = chain
        .apply(record(
            "audit",
            Some(json!({"a": {"b": 1}})),
            vec![Header {
                name: "skip-flatten".into(),
                value: Some(b"1".to_vec()),
            }],
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        (skipped.topic.as_str(), skipped.value),
        ("audit", Some(json!({"a": {"b": 1}})))
    );
}

#[test]
fn connect_style_field_chain() {
    let chain = chain(
        "- extractField: {field: after}\n\
         - renameFields: {fields: [{from: customer_id, to: customer}]}\n\
         - keepFields: {fields: [id, customer, rating, region]}\n\
         - cast: {fields: [{field: rating, to: Float}, {field: id, to: String}]}\n\
         - maskFields: {fields: [customer]}\n\
         - valueToKey: {fields: [id]}\n\
         - route: {topicFormat: '${topic}-${timestamp}', timestampFormat: yyyy-MM}\n",
    )
    .unwrap();
    let out = chain
        .apply(rating_event("c", json!(null), row(4, 3, "us"), 0))
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_string(out.value.as_ref().unwrap()).unwrap(),
        r#"{"id":"4","customer":0,"region":"us","rating":3.0}"#
    );
    assert_eq!(out.key, Some(json!({"id": "4"})));
    assert_eq!(out.topic, "shop.public.ratings-2023-11");
}

#[test]
fn an_empty_chain_passes_records_unchanged() {
    let chain = TransformChain::new(&[]).unwrap();
    assert!(chain.is_empty());
    let record = rating_event("c", json!(null), row(1, 1, "eu"), 0);
    assert_eq!(chain.apply(record.clone()).unwrap(), Some(record));
}

#[test]
fn runtime_errors_name_the_transform_and_field() {
    let chain = chain(
        "- unwrap: {}\n\
         - cast: {fields: [{field: rating, to: Int}]}\n",
    )
    .unwrap();
    let mut bad = row(1, 0, "eu");
    bad["rating"] = json!("abc");
    let error: TransformError = chain.apply(rating_event("c", json!(null), bad, 0)).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"spec.transforms[1].cast: rating: cannot cast "abc" to Int"#
    );
    assert_eq!(
        (error.index, error.transform, error.field.as_deref()),
        (1, "cast", Some("rating"))
    );

    let extract = self::chain("- extractField: {field: after}\n").unwrap();
    let heartbeat = Record {
        value: Some(json!({"ts_ms": 1})),
        ..rating_event("c", json!(null), row(1, 1, "eu"), 0)
    };
    assert_eq!(
        extract.apply(heartbeat).unwrap_err().to_string(),
        "spec.transforms[0].extractField: after: not found in the value"
    );
}

#[test]
fn config_errors_name_the_field_and_position() {
    assert_eq!(
        config_error(
            "- unwrap: {}\n\
             - flatten: {}\n\
             - filter: {expression: 'after.rating <'}\n"
        ),
        "spec.transforms[2].filter.expression: expected a field, a value or '(' after '<', \
         found the end of the expression at column 15"
    );
    assert_eq!(
        config_error("- filter: {expression: \"region in ['eu' 'us']\"}\n"),
        "spec.transforms[0].filter.expression: expected ',' or ']' in the list, found the string 'us' at column 17"
    );
    assert_eq!(
        config_error("- flatten: {}\n  unwrap: {}\n"),
        "spec.transforms[0]: set exactly one of filter, insertField, renameFields, dropFields, keepFields, \
         maskFields, extractField, flatten, cast, convertTimestamp, route, valueToKey or unwrap (found flatten, unwrap)"
    );
    assert_eq!(
        config_error("- predicate: {isTombstone: true}\n"),
        "spec.transforms[0]: set exactly one of filter, insertField, renameFields, dropFields, keepFields, \
         maskFields, extractField, flatten, cast, convertTimestamp, route, valueToKey or unwrap (found none)"
    );
    assert!(
        config_error("- flatten: {}\n- predicate: {topicMatches: '(orders'}\n  unwrap: {}\n").starts_with(
            "spec.transforms[1].predicate.topicMatches: not a regular expression: regex parse error:"
        )
    );
    assert_eq!(
        config_error("- cast: {fields: [{field: 'after.', to: Int}]}\n"),
        "spec.transforms[0].cast.fields[0].field: 'after.' is not a field path: names are separated by \
         single dots, e.g. after.rating"
    );
    assert_eq!(
        config_error("- route: {regex: 'a(.*)', replacement: '$2'}\n"),
        "spec.transforms[0].route.replacement: refers to group '2', but the regex has 1 numbered group"
    );
}

#[test]
fn debezium_micro_timestamps_become_text() {
    let chain = chain(
        "- unwrap: {}\n\
         - convertTimestamp: {field: created_at, to: String, unit: Microseconds}\n\
         - convertTimestamp: {field: ordered_on, to: String, unit: Days, format: yyyy-MM-dd}\n",
    )
    .unwrap();
    let after = json!({"id": 1, "created_at": 1_700_000_000_123_456_i64, "ordered_on": 19_783});
    let out = chain
        .apply(rating_event("c", json!(null), after, 0))
        .unwrap()
        .unwrap();
    assert_eq!(
        out.value,
        Some(json!({"id": 1, "created_at": "2023-11-14T22:13:20.123456Z", "ordered_on": "2024-03-01"}))
    );
}

#[test]
fn a_chain_is_shared_across_tasks() {
    // The sink runtime builds one chain per connector and uses it from its tasks.
    fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    shareable(&chain(LOW_RATINGS).unwrap());
    let error = TransformError {
        index: 0,
        transform: "cast",
        field: None,
        message: String::new(),
    };
    shareable(&error);
}

#[test]
fn every_example_in_the_user_docs_builds() {
    // docs/transforms.md is the user reference: its YAML examples must stay valid.
    let docs = include_str!("../../../docs/transforms.md");
    let mut built = 0;
    for block in docs.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        let document: serde_yaml::Value =
            serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        let transforms = if document.is_sequence() {
            document
        } else {
            document["spec"]["transforms"].clone()
        };
        let specs: Vec<TransformSpec> =
            serde_yaml::from_value(transforms).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        TransformChain::new(&specs).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        built += specs.len();
    }
    assert!(built >= 20, "only {built} example transforms found");
}
