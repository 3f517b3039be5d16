//! The dialect as users write it: queries that plan (and what they compute
//! on rows), and queries refused with the line, column and what is allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tributary_sql::{
    Context, Emit, Expr, PlanOptions, Projection, SqlError, Window, evaluate, is_true, parse_and_plan,
};

fn plan(sql: &str) -> tributary_sql::Plan {
    match parse_and_plan(sql, &PlanOptions::default()) {
        Ok(plan) => plan,
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn error(sql: &str) -> SqlError {
    match parse_and_plan(sql, &PlanOptions::default()) {
        Ok(plan) => panic!("{sql} planned: {}", plan.explain()),
        Err(e) => e,
    }
}

/// Evaluates a projection query on one row: `None` when WHERE drops it.
fn run(sql: &str, row: &Value) -> Option<Value> {
    let plan = plan(sql);
    let key = json!("k");
    let ctx = Context::row(row, &key, 60_000);
    if let Some(filter) = &plan.filter
        && !is_true(&evaluate(filter, &ctx).unwrap())
    {
        return None;
    }
    match &plan.projection {
        Projection::Wildcard => Some(row.clone()),
        Projection::Columns(columns) => {
            let mut out = serde_json::Map::new();
            for c in columns {
                out.insert(c.name.clone(), evaluate(&c.expr, &ctx).unwrap());
            }
            Some(Value::Object(out))
        }
        Projection::Aggregate(_) => panic!("aggregate"),
    }
}

fn debezium(rating: i64, region: &str) -> Value {
    json!({
        "before": null,
        "after": {"rating_id": 7, "rating": rating, "region": region, "comment": " Too slow ", "created_at": "2026-01-02T03:04:05Z"},
        "source": {"table": "ratings", "ts_ms": 1_767_323_045_000_i64},
        "op": "c",
        "ts_ms": 1_767_323_045_100_i64
    })
}

#[test]
fn debezium_envelopes_are_read_through_paths() {
    let sql = "INSERT INTO rating_alerts\nSELECT after.rating_id AS id, after.rating, UPPER(after.region) AS region\nFROM ratings\nWHERE after.rating < 3 AND op <> 'd'\nEMIT CHANGES;";
    let plan = plan(sql);
    assert_eq!(plan.input_topics(), vec!["ratings".to_owned()]);
    assert_eq!(plan.output_topic(), Some("rating_alerts"));
    assert_eq!(plan.column_names(), vec!["id", "rating", "region"]);
    assert_eq!(
        run(sql, &debezium(2, "eu")),
        Some(json!({"id": 7, "rating": 2, "region": "EU"}))
    );
    assert_eq!(run(sql, &debezium(4, "eu")), None);
}

#[test]
fn aliases_qualify_columns_and_dotted_topics_keep_their_name() {
    let sql = "SELECT r.after.rating AS rating FROM shop.public.ratings AS r WHERE r.after.region = 'eu'";
    let plan = plan(sql);
    assert_eq!(plan.input_topics(), vec!["shop.public.ratings".to_owned()]);
    assert_eq!(run(sql, &debezium(5, "eu")), Some(json!({"rating": 5})));
    let quoted = plan_topic("SELECT * FROM \"rating-events\"");
    assert_eq!(quoted, "rating-events");
}

fn plan_topic(sql: &str) -> String {
    plan(sql).input_topics().remove(0)
}

#[test]
fn case_cast_coalesce_and_functions_compute_per_row() {
    let sql = "SELECT
        CASE WHEN after.rating <= 2 THEN 'bad' WHEN after.rating = 3 THEN 'ok' ELSE 'good' END AS verdict,
        CAST(after.rating AS DOUBLE) / 2 AS half,
        CAST(after.rating AS VARCHAR) || '/5' AS stars,
        COALESCE(after.missing, after.region, 'none') AS region,
        TRIM(after.comment) AS comment,
        LENGTH(TRIM(after.comment)) AS comment_length,
        SUBSTRING(after.region FROM 1 FOR 1) AS initial,
        ROUND(after.rating * 1.25, 1) AS scaled,
        PARSE_TIMESTAMP(after.created_at) AS created_ms,
        FORMAT_TIMESTAMP(DATE_TRUNC('hour', source.ts_ms)) AS hour,
        EXTRACT(MINUTE FROM source.ts_ms) AS minute,
        after.rating BETWEEN 1 AND 2 AS low,
        after.region IN ('eu', 'us') AS known,
        after.comment LIKE '%slow%' AS slow,
        ROWTIME AS ts, ROWKEY AS k
      FROM ratings";
    let out = run(sql, &debezium(2, "eu")).unwrap();
    assert_eq!(
        out,
        json!({
            "verdict": "bad", "half": 1.0, "stars": "2/5", "region": "eu", "comment": "Too slow",
            "comment_length": 8, "initial": "e", "scaled": 2.5, "created_ms": 1_767_323_045_000_i64,
            "hour": "2026-01-02T03:00:00Z", "minute": 4, "low": true, "known": true, "slow": true,
            "ts": 60_000, "k": "k"
        })
    );
}

#[test]
fn subscripts_double_colon_casts_and_timestamp_literals() {
    let sql = "SELECT items[1] AS second, tags['a-b'] AS dashed, after.rating::VARCHAR AS text,
               TIMESTAMP '2026-12-02 10:00:00' AS at, TRIM(LEADING FROM '  x ') AS trimmed FROM t";
    let row = json!({"items": [1, 2], "tags": {"a-b": true}, "after": {"rating": 4}});
    assert_eq!(
        run(sql, &row),
        Some(json!({"second": 2, "dashed": true, "text": "4", "at": 1_796_205_600_000_i64, "trimmed": "x "}))
    );
}

#[test]
fn nulls_follow_three_valued_logic() {
    let sql = "SELECT after.x + 1 AS a, after.x IS NULL AS b, NOT (after.x = 1) AS c, after.x = 1 OR TRUE AS d FROM t WHERE after.x IS NULL OR after.x > 0";
    assert_eq!(
        run(sql, &json!({"after": {}})),
        Some(json!({"a": null, "b": true, "c": null, "d": true}))
    );
    // WHERE NULL drops the row.
    assert_eq!(
        run("SELECT * FROM t WHERE after.x > 0", &json!({"after": {}})),
        None
    );
}

#[test]
fn windowed_aggregates_plan_with_grace_and_emit() {
    let sql = "SELECT after.region AS region, COUNT(*) AS ratings, AVG(after.rating) AS avg_rating,
                      MIN(after.rating) AS lowest, MAX(after.rating) AS highest, SUM(after.rating) AS total,
                      WINDOWSTART AS window_start, WINDOWEND AS window_end
               FROM ratings
               WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
               GROUP BY after.region
               HAVING COUNT(*) > 1
               EMIT FINAL";
    let plan = plan(sql);
    assert_eq!(plan.emit, Emit::Final);
    let aggregation = plan.aggregation().unwrap();
    assert_eq!(
        aggregation.window,
        Some(Window::Tumbling {
            size_ms: 60_000,
            grace_ms: 10_000
        })
    );
    assert_eq!(
        aggregation.calls.len(),
        5,
        "COUNT(*) in SELECT and HAVING share a slot"
    );
    assert_eq!(aggregation.columns[0].expr, Expr::Group(0));
    let explain = plan.explain();
    assert!(explain.contains("TUMBLING size=1m grace=10s"), "{explain}");
    assert!(explain.contains("repartition by [$0.after.region]"), "{explain}");
    assert!(explain.contains("emit: FINAL"), "{explain}");

    let hopping = self::plan(
        "SELECT k, COUNT(*) FROM t WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE) GROUP BY k",
    );
    assert_eq!(
        hopping.aggregation().unwrap().window,
        Some(Window::Hopping {
            size_ms: 300_000,
            advance_ms: 60_000,
            grace_ms: 0
        })
    );
    assert_eq!(hopping.emit, Emit::Changes);
    let session = self::plan(
        "select k, count(*) from t window session (30 seconds, grace period 1 second) group by k emit final",
    );
    assert_eq!(
        session.aggregation().unwrap().window,
        Some(Window::Session {
            gap_ms: 30_000,
            grace_ms: 1000
        })
    );
}

#[test]
fn timestamp_fields_come_from_options() {
    let mut options = PlanOptions::default();
    options
        .timestamp_fields
        .insert("ratings".to_owned(), "after.created_ms".to_owned());
    let plan = parse_and_plan("SELECT * FROM ratings", &options).unwrap();
    assert_eq!(
        plan.sources[0].timestamp_field,
        Some(vec!["after".to_owned(), "created_ms".to_owned()])
    );
    assert!(plan.explain().contains("event time from field after.created_ms"));
}

fn assert_error(sql: &str, line: u64, column: u64, needle: &str) {
    let e = error(sql);
    assert_eq!((e.line(), e.column()), (line, column), "{sql}: {e}");
    assert!(e.message().contains(needle), "{sql}: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("line {line}, column {column}: ")),
        "{e}"
    );
}

#[test]
fn errors_name_line_column_and_what_is_allowed() {
    assert_error(
        "SELECT after.rating\nFROM ratings\nWHERE after.rating <",
        3,
        21,
        "expected an expression",
    );
    assert_error(
        "SELECT nosuch(x) FROM t",
        1,
        8,
        "unknown function nosuch; allowed: UPPER",
    );
    assert_error(
        "SELECT x FROM t\nWINDOW TUMBLING (SIZE 1 MINUTE)\nGROUP BY y",
        1,
        8,
        "`x` must appear in GROUP BY",
    );
    assert_error(
        "SELECT k, COUNT(*) FROM t\n  WINDOW TUMBLING (SIZE 1 FORTNIGHT) GROUP BY k",
        2,
        27,
        "MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS",
    );
    assert_error(
        "SELECT k, COUNT(*) FROM t WINDOW SLIDING (SIZE 1 MINUTE) GROUP BY k",
        1,
        34,
        "TUMBLING, HOPPING or SESSION",
    );
    assert_error(
        "SELECT k, COUNT(*) FROM t WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 2 MINUTES) GROUP BY k",
        1,
        69,
        "at most the window size",
    );
    assert_error(
        "SELECT * FROM t EMIT FINAL",
        1,
        17,
        "EMIT FINAL needs a windowed aggregate",
    );
    assert_error(
        "SELECT k, COUNT(*) FROM t GROUP BY k EMIT FINAL",
        1,
        38,
        "EMIT FINAL needs a WINDOW",
    );
    assert_error(
        "SELECT * FROM t EMIT CHANGES WHERE x = 1",
        1,
        30,
        "EMIT (line 1, column 17) must end the query",
    );
    assert_error(
        "SELECT * FROM t WINDOW TUMBLING (SIZE 1 MINUTE)",
        1,
        17,
        "WINDOW needs GROUP BY",
    );
    assert_error("SELECT * FROM t ORDER BY x", 1, 26, "ORDER BY is not supported");
    assert_error(
        "SELECT COUNT(x) FROM t WHERE SUM(x) > 1",
        1,
        30,
        "aggregate SUM is not allowed in WHERE",
    );
    assert_error(
        "SELECT CAST(x AS BLOB) FROM t",
        1,
        13,
        "cannot CAST to BLOB; allowed: BIGINT",
    );
    assert_error("SELECT a.x, b.x FROM t a, u b", 1, 27, "one input in FROM");
    assert_error(
        "SELECT x, y AS x FROM t",
        1,
        11,
        "two output columns are named \"x\"",
    );
    assert_error("SELECT WINDOWSTART FROM t", 1, 8, "WINDOWSTART is only available");
    assert_error(
        "DELETE FROM t",
        1,
        1,
        "SELECT … FROM <topic> or INSERT INTO <topic> SELECT",
    );
    assert_error(
        "SELECT 1 FROM t; SELECT 2 FROM u",
        1,
        1,
        "one query; found 2 statements",
    );
    assert_error("SELECT 'unterminated FROM t", 1, 8, "nterminated");
    assert_error("SELECT upper(x, y) FROM t", 1, 8, "UPPER takes 1 argument, got 2");
}
