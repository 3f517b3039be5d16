//! Joins as users write them: stream-table and stream-stream joins that plan
//! (and what their plan says), and join shapes refused with their line,
//! column and what is allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tributary_sql::{
    Context, Expr, InputKind, JoinInput, JoinKind, JoinWindow, PlanOptions, Projection, Row, SqlError,
    evaluate, parse_and_plan,
};

/// `customers` is declared a table; every other topic is a stream.
fn options() -> PlanOptions {
    PlanOptions {
        tables: ["customers".to_owned(), "regions".to_owned()].into(),
        ..PlanOptions::default()
    }
}

fn plan(sql: &str) -> tributary_sql::Plan {
    match parse_and_plan(sql, &options()) {
        Ok(plan) => plan,
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn assert_error(sql: &str, line: u64, column: u64, needle: &str) {
    let e: SqlError = match parse_and_plan(sql, &options()) {
        Ok(plan) => panic!("{sql} planned: {}", plan.explain()),
        Err(e) => e,
    };
    assert_eq!((e.line(), e.column()), (line, column), "{sql}: {e}");
    assert!(e.message().contains(needle), "{sql}: {e}");
}

/// The output columns of a projection over a FROM row and a joined row.
fn project(plan: &tributary_sql::Plan, left: &Value, right: Option<&Value>) -> Value {
    let key = Value::Null;
    let ctx = Context {
        rows: [Some(left), right.map(|r| r as &dyn Row)],
        ..Context::row(left, &key, 1000)
    };
    let Projection::Columns(columns) = &plan.projection else {
        panic!("not a projection")
    };
    Value::Object(
        columns
            .iter()
            .map(|c| (c.name.clone(), evaluate(&c.expr, &ctx).unwrap()))
            .collect(),
    )
}

#[test]
fn stream_table_joins_look_up_the_table_by_key() {
    let plan = plan(
        "INSERT INTO enriched\nSELECT o.id, o.amount, c.name AS customer\nFROM orders o\nLEFT JOIN customers c ON o.customer_id = c.ROWKEY\nWHERE o.amount > 10",
    );
    assert_eq!(plan.sources[1].kind, InputKind::Table);
    assert_eq!(plan.sources[0].kind, InputKind::Stream);
    let join = plan.join.as_ref().unwrap();
    assert_eq!(join.kind, JoinKind::Left);
    assert_eq!(join.left_key.to_string(), "$0.customer_id");
    assert_eq!(join.right, JoinInput::Table { key_path: vec![] });
    // The table is looked up where the order is read: no repartition.
    assert!(!plan.repartitions());
    let order = json!({"id": 1, "amount": 12, "customer_id": "c1"});
    assert_eq!(
        project(&plan, &order, Some(&json!({"name": "Ada"}))),
        json!({"id": 1, "amount": 12, "customer": "Ada"})
    );
    // LEFT without a match: the table's columns are NULL.
    assert_eq!(
        project(&plan, &order, None),
        json!({"id": 1, "amount": 12, "customer": null})
    );
    let explain = plan.explain();
    assert!(
        explain.contains("input $1: topic customers as table (latest row per key)"),
        "{explain}"
    );
    assert!(
        explain.contains(
            "join (left, stream-table): $0.customer_id = $1 key; every worker reads the whole table"
        ),
        "{explain}"
    );
}

#[test]
fn table_keys_may_be_compared_by_a_field_and_sides_may_be_swapped() {
    // Debezium keys are JSON objects ({"id": 5}): compare one of their fields.
    let plan = plan(
        "SELECT o.after.id, c.after.name FROM shop.public.orders o JOIN customers c ON c.ROWKEY.id = o.after.customer_id",
    );
    let join = plan.join.unwrap();
    assert_eq!(join.kind, JoinKind::Inner);
    assert_eq!(join.left_key.to_string(), "$0.after.customer_id");
    assert_eq!(
        join.right,
        JoinInput::Table {
            key_path: vec!["id".to_owned()]
        }
    );
    // Unaliased topics qualify columns by their name; the FROM key may be computed.
    let plan = self::plan(
        "SELECT orders.id FROM orders INNER JOIN customers ON LOWER(orders.cust) = customers.rowkey",
    );
    assert_eq!(plan.join.unwrap().left_key.to_string(), "LOWER($0.cust)");
}

#[test]
fn stream_stream_joins_need_a_time_bound_with_optional_grace() {
    let plan =
        plan("SELECT o.id, s.carrier FROM orders o\nJOIN shipments s WITHIN 1 HOUR ON o.id = s.order_id");
    let join = plan.join.as_ref().unwrap();
    let JoinInput::Stream { right_key, window } = &join.right else {
        panic!("{join:?}")
    };
    assert_eq!(
        right_key,
        &Expr::Column(tributary_sql::ColumnRef {
            input: 1,
            path: vec!["order_id".to_owned()]
        })
    );
    assert_eq!(
        *window,
        JoinWindow {
            before_ms: 3_600_000,
            after_ms: 3_600_000,
            grace_ms: 0
        }
    );
    let plan = self::plan(
        "SELECT o.id, s.carrier FROM orders o LEFT OUTER JOIN shipments s WITHIN (1 SECOND, 5 SECONDS) GRACE PERIOD 2 SECONDS ON s.order_id = o.id EMIT CHANGES",
    );
    let join = plan.join.as_ref().unwrap();
    assert_eq!(join.kind, JoinKind::Left);
    assert_eq!(join.left_key.to_string(), "$0.id");
    let JoinInput::Stream { window, .. } = join.right else {
        panic!()
    };
    assert_eq!(
        (window.before_ms, window.after_ms, window.grace_ms),
        (1000, 5000, 2000)
    );
    // A shipment may be 1 s earlier or 5 s later than its order.
    assert!(window.matches(10_000, 9_000));
    assert!(window.matches(10_000, 15_000));
    assert!(!window.matches(10_000, 8_999));
    assert!(!window.matches(10_000, 15_001));
    // Late: more than the grace behind stream time.
    assert!(!window.is_late(8_000, 10_000));
    assert!(window.is_late(7_999, 10_000));
    // An order can match shipments up to 5 s later, arriving up to 2 s late.
    assert_eq!(window.expires_after(0, 10_000), 17_000);
    assert_eq!(window.expires_after(1, 10_000), 13_000);
    let explain = plan.explain();
    assert!(
        explain.contains("repartition both inputs by the join key through an internal topic"),
        "{explain}"
    );
    assert!(
        explain.contains(
            "join (left, stream-stream): $0.id = $1.order_id, $1 event time within [$0 - 1000 ms, $0 + 5000 ms], grace 2000 ms"
        ),
        "{explain}"
    );
    assert!(
        explain.contains("unmatched $0 rows are written with NULLs"),
        "{explain}"
    );
    assert!(plan.repartitions());
}

#[test]
fn aggregates_over_a_stream_table_join_plan() {
    let plan = plan(
        "SELECT c.region AS region, COUNT(*) AS orders FROM orders o JOIN customers c ON o.customer_id = c.ROWKEY\nWINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY c.region EMIT FINAL",
    );
    let aggregation = plan.aggregation().unwrap();
    assert_eq!(aggregation.group_by[0].to_string(), "$1.region");
}

#[test]
#[allow(clippy::too_many_lines)] // one assertion per refused shape
fn unsupported_join_shapes_are_refused_with_their_position() {
    assert_error(
        "SELECT o.id FROM orders o\nJOIN customers c ON o.customer_id < c.ROWKEY",
        2,
        21,
        "ON takes one equality",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN customers c ON o.a = c.ROWKEY AND o.b = 1",
        1,
        47,
        "ON takes one equality",
    );
    assert_error(
        "SELECT c.id FROM customers c JOIN regions r ON c.region = r.ROWKEY",
        1,
        18,
        "table-table joins are not supported",
    );
    assert_error("SELECT c.id FROM customers c", 1, 18, "FROM reads a stream");
    assert_error(
        "SELECT o.id, s.carrier\nFROM orders o JOIN shipments s ON o.id = s.order_id",
        2,
        20,
        "a stream-stream join needs a time bound: add WITHIN",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN customers c WITHIN 1 MINUTE ON o.cid = c.ROWKEY",
        1,
        44,
        "WITHIN bounds a stream-stream join; customers is a table",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id = s.ROWKEY",
        1,
        70,
        "s is a stream: s.ROWKEY looks a table row up by key; declare the topic a table (spec.inputs[].kind: Table)",
    );
    assert_error(
        "SELECT o.id FROM orders o WITHIN 1 MINUTE",
        1,
        27,
        "this query has no JOIN",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN customers c ON o.customer_id = c.id",
        1,
        63,
        "write ON <o expression> = c.ROWKEY (or c.ROWKEY.<field>",
    );
    assert_error(
        "SELECT o.id FROM orders o RIGHT JOIN customers c ON o.cid = c.ROWKEY",
        1,
        38,
        "RIGHT and FULL OUTER joins are not supported",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN customers c USING (id)",
        1,
        32,
        "USING and NATURAL are not supported",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN customers c ON o.cid = c.ROWKEY JOIN regions r ON o.r = r.ROWKEY",
        1,
        69,
        "one JOIN per query",
    );
    assert_error(
        "SELECT a.id FROM orders a JOIN orders b WITHIN 1 MINUTE ON a.id = b.id",
        1,
        32,
        "self-joins are not supported",
    );
    assert_error(
        "SELECT * FROM orders o JOIN customers c ON o.cid = c.ROWKEY",
        1,
        1,
        "SELECT * over a join",
    );
    assert_error(
        "SELECT o.id, COUNT(*) FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id = s.oid GROUP BY o.id",
        1,
        42,
        "aggregates (GROUP BY, COUNT, …) over a stream-stream join are not supported",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id = o.other",
        1,
        63,
        "both sides read the same input",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id = 5",
        1,
        70,
        "a constant condition belongs in WHERE",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id || s.id = s.id",
        1,
        63,
        "each side of ON reads one input",
    );
    assert_error(
        "SELECT id FROM orders o JOIN shipments s WITHIN 1 MINUTE ON o.id = s.order_id",
        1,
        8,
        "`id` is ambiguous in a join: qualify it with its input (o.id or s.id)",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN 1 FORTNIGHT ON o.id = s.order_id",
        1,
        53,
        "MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS",
    );
    assert_error(
        "SELECT o.id FROM orders o JOIN shipments s WITHIN (1 MINUTE 2 MINUTES) ON o.id = s.order_id",
        1,
        61,
        "between WITHIN's two bounds",
    );
}
