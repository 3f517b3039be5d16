//! SQL streams end to end: the worker binary runs a `Stream` manifest
//! against the real Kafka; input events in, the exact expected output out
//! (golden tests), late data, Postgres computing the same aggregate over the
//! same rows, and kill -9 under exactly-once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::avro::{decode_avro, field};
use support::sink::{SinkFixture, WAIT};
use support::stream::{
    MINUTE, StreamFixture, T0, committed, free_addr, metric, rating, read_all, sorted, values,
};
use tributary_registry::RegistryClient;
use tributary_testkit::unique_name;

#[tokio::test(flavor = "multi_thread")]
async fn low_ratings_become_alerts_with_their_key_at_least_once() {
    let s = StreamFixture::new("stream-alerts", 3).await;
    let events: Vec<_> = (0..60u32)
        .map(|i| {
            let stars = i64::from(i % 5) + 1;
            (
                format!("r{i}"),
                rating(i, ["eu", "us", "apac"][i as usize % 3], stars, T0 + i64::from(i)),
            )
        })
        .collect();
    s.produce(
        &events
            .iter()
            .map(|(k, v)| (Some(k.as_str()), v.clone()))
            .collect::<Vec<_>>(),
    )
    .await;
    // A delete (no `after`) and a tombstone must not become alerts.
    s.produce(&[(
        Some("r1"),
        json!({"before": {"rating": 1}, "after": null, "op": "d", "ts": T0}),
    )])
    .await;
    s.fx.produce(s.input(), &[(Some(b"r1".to_vec()), None)]).await;
    let sql = "INSERT INTO {out}
SELECT after.rating_id AS id, after.rating AS rating, UPPER(after.region) AS region,
       CASE WHEN after.rating = 1 THEN 'urgent' ELSE 'low' END AS priority
FROM {in}
WHERE after.rating < 3 AND op <> 'd'
EMIT CHANGES";
    let mut worker = s.start(&s.yaml("alerts", sql, ""), &unique_name("w"), "off");
    let expected: Vec<(String, Value)> = events
        .iter()
        .filter(|(_, v)| v["after"]["rating"].as_i64().unwrap() < 3)
        .map(|(k, v)| {
            let stars = v["after"]["rating"].as_i64().unwrap();
            (
                format!("\"{k}\""),
                json!({
                    "id": v["after"]["rating_id"],
                    "rating": stars,
                    "region": v["after"]["region"].as_str().unwrap().to_uppercase(),
                    "priority": if stars == 1 { "urgent" } else { "low" }
                }),
            )
        })
        .collect();
    assert_eq!(expected.len(), 24);
    let out = s.wait_for(&s.output, expected.len(), &mut worker).await;
    // The key is the input's key, as it was (plain text here, not JSON).
    let got: Vec<(String, Value)> = out
        .iter()
        .map(|r| {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            (
                format!("\"{key}\""),
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|(k, v)| (k.clone(), v.to_string()));
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_by_key(|(k, v)| (k.clone(), v.to_string()));
    assert_eq!(got_sorted, expected_sorted);
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
    // Offsets were committed: a new worker of the same stream writes nothing again.
    let mut again = s.start(&s.yaml("alerts", sql, ""), &unique_name("w"), "off");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        read_all(&s.fx.endpoints.kafka_bootstrap, &s.output).await.len(),
        expected.len()
    );
    assert!(again.stop());
}

#[tokio::test(flavor = "multi_thread")]
async fn tumbling_final_counts_drop_late_events_and_count_them() {
    let s = StreamFixture::new("stream-late", 2).await;
    let second = 1000;
    // Window [T0, T0+10s) with a 2 s grace: closes when stream time reaches T0+12s.
    let events = vec![
        rating(1, "eu", 5, T0 + second),
        rating(2, "eu", 3, T0 + 5 * second),
        rating(3, "us", 4, T0 + 6 * second),
        rating(4, "eu", 1, T0 + 11 * second), // next window; stream time T0+11s: [T0, T0+10s) still open
        rating(5, "eu", 2, T0 + 9 * second),  // in grace: counted in the first window
        rating(6, "eu", 4, T0 + 12 * second), // stream time T0+12s: the eu partition closes [T0, T0+10s)
        rating(7, "eu", 5, T0 + 3 * second),  // late: dropped and counted
        rating(8, "us", 2, T0 + 30 * second), // us: closes its first window
        rating(9, "eu", 3, T0 + 30 * second), // eu: closes [T0+10s, T0+20s)
    ];
    s.produce(&events.iter().map(|v| (Some("k"), v.clone())).collect::<Vec<_>>())
        .await;
    let sql = "INSERT INTO {out}
SELECT after.region AS region, COUNT(*) AS ratings, SUM(after.rating) AS stars,
       MIN(after.rating) AS worst, MAX(after.rating) AS best, AVG(after.rating) AS average,
       WINDOWSTART AS window_start, WINDOWEND AS window_end
FROM {in}
WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 2 SECONDS)
GROUP BY after.region
EMIT FINAL";
    let http = free_addr();
    let mut worker = s.start(&s.yaml("late", sql, ""), &unique_name("w"), &http);
    let out = s.wait_for(&s.output, 3, &mut worker).await;
    let window = |start: i64| (T0 + start * second, T0 + (start + 10) * second);
    let row = |region: &str, n: i64, stars: i64, worst: i64, best: i64, w: (i64, i64)| {
        #[allow(clippy::cast_precision_loss)]
        let average = stars as f64 / n as f64;
        json!({"region": region, "ratings": n, "stars": stars, "worst": worst, "best": best,
               "average": average, "window_start": w.0, "window_end": w.1})
    };
    assert_eq!(
        sorted(values(&out)),
        sorted(vec![
            row("eu", 3, 10, 2, 5, window(0)),
            row("us", 1, 4, 4, 4, window(0)),
            row("eu", 2, 5, 1, 4, window(10)),
        ])
    );
    // Keys: the group and the window.
    let keys: Vec<Value> = out
        .iter()
        .map(|r| serde_json::from_slice(r.key.as_deref().unwrap()).unwrap())
        .collect();
    assert!(
        keys.contains(&json!({"region": "eu", "window_start": T0, "window_end": T0 + 10 * second})),
        "{keys:?}"
    );
    assert_eq!(metric(&http, "stream_late_records").await, 1);
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn hopping_windows_emit_changes_per_commit_with_having() {
    let s = StreamFixture::new("stream-hop", 1).await;
    let second = 1000;
    let events = [
        rating(1, "eu", 5, T0 + second),
        rating(2, "eu", 3, T0 + 6 * second),
        rating(3, "eu", 1, T0 + 11 * second),
        rating(4, "us", 2, T0 + 2 * second),
    ];
    s.produce(&events.iter().map(|v| (Some("k"), v.clone())).collect::<Vec<_>>())
        .await;
    // 10 s windows every 5 s: T0+1s is in [T0-5s,T0+5s) and [T0,T0+10s); T0+6s in [T0,T0+10s), [T0+5s,T0+15s) …
    let sql = "INSERT INTO {out}
SELECT after.region AS region, WINDOWSTART AS ws, COUNT(*) AS n, SUM(after.rating) AS stars
FROM {in}
WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 1 MINUTE)
GROUP BY after.region
HAVING COUNT(*) >= 2
EMIT CHANGES";
    let mut worker = s.start(
        &s.yaml("hop", sql, "  commitIntervalMs: 500\n"),
        &unique_name("w"),
        "off",
    );
    // Changed groups are written at each commit; HAVING hides windows with
    // one rating, and a window with two never changes again: each appears once.
    let out = s.wait_for(&s.output, 2, &mut worker).await;
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
    assert_eq!(
        sorted(values(&out)),
        sorted(vec![
            json!({"region": "eu", "ws": T0, "n": 2, "stars": 8}),
            json!({"region": "eu", "ws": T0 + 5 * second, "n": 2, "stars": 4}),
        ])
    );
}

/// The ratings scenario: counts per region per minute computed by the
/// stream equal `GROUP BY region, date_trunc('minute', ts)` in Postgres.
#[tokio::test(flavor = "multi_thread")]
async fn ratings_counts_per_region_per_minute_equal_postgres() {
    let s = StreamFixture::new("stream-pg", 3).await;
    let regions = ["eu", "us", "apac", "latam"];
    // 600 ratings over 10 minutes, slightly out of order (within the grace period).
    let mut events = Vec::new();
    let mut seed: u64 = 7;
    for i in 0..600u32 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let jitter = i64::try_from(seed >> 60).unwrap() * 500; // up to 7.5 s back
        let ts = T0 + i64::from(i) * 1000 - jitter;
        let region = regions[usize::try_from(seed >> 40).unwrap() % regions.len()];
        let stars = i64::try_from((seed >> 20) % 5).unwrap() + 1;
        events.push(rating(i, region, stars, ts));
    }
    let client = support::connect(&s.fx.endpoints.postgres).await;
    let table = s.fx.name.replace('-', "_");
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (region text, rating int, ts timestamptz)"
        ))
        .await
        .unwrap();
    for e in &events {
        client
            .execute(
                &format!("INSERT INTO {table} VALUES ($1, $2, to_timestamp($3::bigint / 1000.0))"),
                &[
                    &e["after"]["region"].as_str().unwrap(),
                    &i32::try_from(e["after"]["rating"].as_i64().unwrap()).unwrap(),
                    &e["ts"].as_i64().unwrap(),
                ],
            )
            .await
            .unwrap();
    }
    let rows = client
        .query(
            &format!(
                "SELECT region, (extract(epoch FROM date_trunc('minute', ts)) * 1000)::bigint AS window_start,
                        count(*) AS ratings, count(*) FILTER (WHERE rating < 3) AS low
                 FROM {table} GROUP BY 1, 2"
            ),
            &[],
        )
        .await
        .unwrap();
    let expected: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"region": r.get::<_, String>(0), "window_start": r.get::<_, i64>(1),
                   "ratings": r.get::<_, i64>(2), "low": r.get::<_, i64>(3)})
        })
        .collect();
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    // Then one rating per region far ahead, closing every window of the 10 minutes.
    for region in regions {
        events.push(rating(9999, region, 5, T0 + 60 * MINUTE));
    }
    s.produce(&events.iter().map(|v| (Some("k"), v.clone())).collect::<Vec<_>>())
        .await;
    let sql = "INSERT INTO {out}
SELECT after.region AS region, WINDOWSTART AS window_start, COUNT(*) AS ratings,
       SUM(CASE WHEN after.rating < 3 THEN 1 ELSE 0 END) AS low
FROM {in}
WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
GROUP BY after.region
EMIT FINAL";
    let mut worker = s.start(&s.yaml("per-region", sql, ""), &unique_name("w"), "off");
    let out = s.wait_for(&s.output, expected.len(), &mut worker).await;
    assert_eq!(sorted(values(&out)), sorted(expected));
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
}

/// kill -9 in the middle of a windowed aggregate under exactly-once: the
/// final results equal those of an uninterrupted run of the same query.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_windowed_aggregate_exactly_once_changes_nothing() {
    let s = StreamFixture::new("stream-eos", 3).await;
    let sql = TEN_SECOND_COUNTS;
    let batch = ratings_100ms_apart;
    // 3000 ratings, 100 ms apart: 30 windows of 10 s per region.
    s.produce(&batch(0, 1500)).await;
    let host = unique_name("w");
    let exactly_once = "  processingGuarantee: ExactlyOnce\n";
    let yaml = s.yaml("eos", sql, exactly_once);
    let mut worker = s.start(&yaml, &host, "off");
    // Kill it once it has written some results (state in the changelog, offsets committed).
    s.wait_for_at_least(&s.output, 10, &mut worker).await;
    worker.kill9();
    s.produce(&batch(1500, 3000)).await;
    s.produce(&window_closers()).await;
    let mut restarted = s.start(&yaml, &host, "off");
    let interrupted = values(&s.wait_for(&s.output, 90, &mut restarted).await);
    assert!(restarted.stop(), "graceful stop; log:\n{}", restarted.log_text());

    // The same query, uninterrupted, into another topic.
    let reference = StreamFixture {
        fx: SinkFixture::reading("stream-eos-ref", s.input()),
        output: format!("{}-ref", s.output),
    };
    let mut uninterrupted = reference.start(
        &reference.yaml("eos-ref", sql, exactly_once),
        &unique_name("w"),
        "off",
    );
    let expected = values(
        &reference
            .wait_for(&reference.output, 90, &mut uninterrupted)
            .await,
    );
    assert!(uninterrupted.stop());

    let mut by_window: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for row in &expected {
        by_window.insert(
            (
                row["region"].as_str().unwrap().to_owned(),
                row["window_start"].as_i64().unwrap(),
            ),
            row["ratings"].as_i64().unwrap(),
        );
    }
    assert_eq!(by_window.len(), 90, "one result per region and window");
    assert!(by_window.values().all(|n| *n == 33 || *n == 34), "{by_window:?}");
    assert_eq!(sorted(interrupted), sorted(expected));
}

/// Counts and stars per region per 10 s tumbling window, final results only.
const TEN_SECOND_COUNTS: &str = "INSERT INTO {out}
SELECT after.region AS region, WINDOWSTART AS window_start, COUNT(*) AS ratings, SUM(after.rating) AS stars
FROM {in}
WINDOW TUMBLING (SIZE 10 SECONDS)
GROUP BY after.region
EMIT FINAL";

/// Ratings `from..to`, 100 ms apart from `T0`, regions in turn, all with key
/// `k` (one partition, so event time only moves forward).
fn ratings_100ms_apart(from: u32, to: u32) -> Vec<(Option<&'static str>, Value)> {
    (from..to)
        .map(|i| {
            let region = ["eu", "us", "apac"][i as usize % 3];
            (
                Some("k"),
                rating(i, region, i64::from(i % 5) + 1, T0 + i64::from(i) * 100),
            )
        })
        .collect()
}

/// One rating per region an hour ahead: closes every window before it.
fn window_closers() -> [(Option<&'static str>, Value); 3] {
    ["eu", "us", "apac"].map(|r| (Some("k"), rating(9999, r, 1, T0 + 3600 * 1000)))
}

/// `spec.state: Paused` written into a running stream's config file (as
/// kubelet updates a mounted ConfigMap): the process and its health endpoint
/// stay up, the status says Paused, no offset moves and nothing is produced;
/// `Running` again continues from the committed offsets with the windows'
/// state restored — under exactly-once every window is counted once, in full.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_stream_moves_nothing_and_resumes_where_it_stopped() {
    let s = StreamFixture::new("stream-pause", 3).await;
    let bootstrap = s.fx.endpoints.kafka_bootstrap.clone();
    let group = format!("tributary-{}-paused", s.fx.name);
    let committed_now = || {
        let (bootstrap, group, input) = (bootstrap.clone(), group.clone(), s.input().to_owned());
        tokio::task::spawn_blocking(move || committed(&bootstrap, &group, &input, 3))
    };
    let running = s.yaml(
        "paused",
        TEN_SECOND_COUNTS,
        "  processingGuarantee: ExactlyOnce\n",
    );
    let paused = running.replace("spec:\n", "spec:\n  state: Paused\n");
    assert_ne!(paused, running);
    let http = free_addr();
    s.produce(&ratings_100ms_apart(0, 1500)).await;
    let mut worker = s.start(&running, &unique_name("w"), &http);
    // Every rating so far processed (offsets committed with the transaction).
    let deadline = Instant::now() + WAIT;
    while committed_now().await.unwrap() < 1500 {
        assert!(
            Instant::now() < deadline && worker.running(),
            "not all processed; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    std::fs::write(&worker.config, &paused).unwrap();
    let status_key = format!("{}-paused", s.fx.name);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = read_all(&bootstrap, &s.fx.status_topic)
            .await
            .into_iter()
            .rev()
            .find(|r| r.key.as_deref() == Some(status_key.as_bytes()))
            .map(|r| serde_json::from_slice::<Value>(r.value.as_deref().unwrap()).unwrap());
        if status.is_some_and(|s| s["state"] == "Paused") {
            break;
        }
        assert!(
            Instant::now() < deadline && worker.running(),
            "never Paused; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let output_at_pause = read_all(&bootstrap, &s.output).await.len();
    assert!(
        output_at_pause > 0,
        "closed windows were written before the pause"
    );
    s.produce(&ratings_100ms_apart(1500, 3000)).await;
    s.produce(&window_closers()).await;
    // Well beyond the commit interval (100 ms) and the state poll (2 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        committed_now().await.unwrap(),
        1500,
        "no offset moved while paused"
    );
    assert_eq!(
        read_all(&bootstrap, &s.output).await.len(),
        output_at_pause,
        "nothing produced while paused"
    );
    assert!(worker.running(), "the process stays up");
    let health = reqwest::get(format!("http://{http}/healthz")).await.unwrap();
    assert!(
        health.status().is_success(),
        "healthz while paused: {}",
        health.status()
    );
    assert_eq!(metric(&http, "stream_records_in").await, 1500);

    std::fs::write(&worker.config, &running).unwrap();
    let results = values(&s.wait_for(&s.output, 90, &mut worker).await);
    let mut per_window: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for row in &results {
        let key = (
            row["region"].as_str().unwrap().to_owned(),
            row["window_start"].as_i64().unwrap(),
        );
        assert!(
            per_window.insert(key, row["ratings"].as_i64().unwrap()).is_none(),
            "one result per window: {row}"
        );
    }
    assert_eq!(
        per_window.values().sum::<i64>(),
        3000,
        "every rating counted once"
    );
    assert!(
        per_window.values().all(|n| *n == 33 || *n == 34),
        "{per_window:?}"
    );
    assert!(worker.log_text().contains("resuming"), "{}", worker.log_text());
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
}

/// Two workers of one stream share the partitions; one joins and the other
/// leaves while a windowed count runs: state moves with the partitions
/// (committed on revoke, restored from the changelog on assign) and every
/// window's total is right, once.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn two_workers_share_partitions_and_keep_totals_across_rebalances() {
    let s = StreamFixture::new("stream-two", 4).await;
    let regions = ["eu", "us", "apac", "latam", "mena", "anz"];
    let batch = |from: u32, to: u32| -> Vec<(Option<String>, Value)> {
        (from..to)
            .map(|i| {
                let region = regions[i as usize % regions.len()];
                (
                    Some(format!("k{}", i % 17)),
                    rating(i, region, 3, T0 + i64::from(i) * 50),
                )
            })
            .collect()
    };
    let produce = |records: Vec<(Option<String>, Value)>| {
        let s = &s;
        async move {
            let borrowed: Vec<(Option<&str>, Value)> =
                records.iter().map(|(k, v)| (k.as_deref(), v.clone())).collect();
            s.produce(&borrowed).await;
        }
    };
    // The backlog of four input partitions is read partition by partition,
    // far apart in event time: the grace period covers that disorder.
    let sql = "INSERT INTO {out}
SELECT after.region AS region, WINDOWSTART AS window_start, COUNT(*) AS ratings
FROM {in}
WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 10 MINUTES)
GROUP BY after.region
EMIT FINAL";
    let yaml = s.yaml("two", sql, "  commitIntervalMs: 200\n");
    produce(batch(0, 2000)).await;
    let mut a = s.start(&yaml, &unique_name("a"), "off");
    // A has aggregated and committed state (windows stay open: long grace).
    let changelog = format!("tributary-{}-two-changelog", s.fx.name);
    let deadline = Instant::now() + WAIT;
    while read_all(&s.fx.endpoints.kafka_bootstrap, &changelog).await.len() < 6 {
        assert!(
            Instant::now() < deadline && a.running(),
            "no state; log:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut b = s.start(&yaml, &unique_name("b"), "off");
    produce(batch(2000, 4000)).await;
    // Wait until B owns partitions (it logs its assignment), then A leaves.
    let deadline = Instant::now() + WAIT;
    while !b.log_text().contains("partitions assigned") {
        assert!(
            Instant::now() < deadline && b.running(),
            "B never joined; log:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.stop(), "graceful stop of A; log:\n{}", a.log_text());
    produce(batch(4000, 6000)).await;
    // Close the windows only once every rating is processed: the closing
    // records sit on one input partition, which may be read before the others.
    let group = format!("tributary-{}-two", s.fx.name);
    let deadline = Instant::now() + WAIT;
    while committed(&s.fx.endpoints.kafka_bootstrap, &group, s.input(), 4) < 6000 {
        assert!(
            Instant::now() < deadline && b.running(),
            "B stalled; log:\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce(
        regions
            .iter()
            .map(|r| (Some("end".to_owned()), rating(0, r, 3, T0 + 3_600_000)))
            .collect(),
    )
    .await;
    // 6000 ratings, 50 ms apart: 30 windows of 10 s, 200 ratings each, spread over 6 regions.
    let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for i in 0..6000i64 {
        let window = T0 + (i * 50) / 10_000 * 10_000;
        *expected
            .entry((
                regions[usize::try_from(i).unwrap() % regions.len()].to_owned(),
                window,
            ))
            .or_default() += 1;
    }
    let out = values(&s.wait_for(&s.output, expected.len(), &mut b).await);
    let got: BTreeMap<(String, i64), i64> = out
        .iter()
        .map(|r| {
            (
                (
                    r["region"].as_str().unwrap().to_owned(),
                    r["window_start"].as_i64().unwrap(),
                ),
                r["ratings"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), out.len(), "a window was written twice");
    assert_eq!(got, expected);
    assert!(
        b.log_text().contains("state restored from the changelog"),
        "{}",
        b.log_text()
    );
    assert!(b.stop());
}

/// Session windows: records within the gap form one session, a record
/// between two sessions merges them, and a record for a closed session is late.
#[tokio::test(flavor = "multi_thread")]
async fn session_windows_merge_and_close_after_the_gap() {
    let s = StreamFixture::new("stream-session", 1).await;
    let second = 1000;
    let events = [
        rating(1, "eu", 5, T0 + second),
        rating(2, "us", 2, T0 + 2 * second),
        rating(3, "eu", 4, T0 + 3 * second),
        rating(4, "eu", 1, T0 + 12 * second), // 9 s after the last: a second session
        rating(5, "eu", 3, T0 + 7 * second), // within 5 s of both (the first is open until 3 + 5 + 10 s): merges them
        rating(6, "eu", 5, T0 + 100 * second),
        rating(7, "us", 5, T0 + 100 * second),
        rating(8, "eu", 2, T0 + 50 * second), // its session would have closed at 65 s: late
    ];
    s.produce(&events.iter().map(|v| (Some("k"), v.clone())).collect::<Vec<_>>())
        .await;
    let sql = "INSERT INTO {out}
SELECT after.region AS region, COUNT(*) AS n, SUM(after.rating) AS stars,
       WINDOWSTART AS session_start, WINDOWEND AS session_end
FROM {in}
WINDOW SESSION (5 SECONDS, GRACE PERIOD 10 SECONDS)
GROUP BY after.region
EMIT FINAL";
    let http = free_addr();
    let mut worker = s.start(&s.yaml("session", sql, ""), &unique_name("w"), &http);
    let out = s.wait_for(&s.output, 2, &mut worker).await;
    assert_eq!(
        sorted(values(&out)),
        sorted(vec![
            json!({"region": "eu", "n": 4, "stars": 13, "session_start": T0 + second, "session_end": T0 + 12 * second + 1}),
            json!({"region": "us", "n": 1, "stars": 2, "session_start": T0 + 2 * second, "session_end": T0 + 2 * second + 1}),
        ])
    );
    assert_eq!(metric(&http, "stream_late_records").await, 1);
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
}

/// Ratings for the typed-output tests: two regions in the window
/// [T0, T0+10s), one row whose `rating_id` is not a number, and one event
/// that closes the window.
async fn typed_output_fixture(prefix: &str) -> (StreamFixture, RegistryClient) {
    let s = StreamFixture::new(prefix, 2).await;
    let second = 1000;
    let mut events = vec![
        rating(1, "eu", 5, T0 + second),
        rating(2, "eu", 2, T0 + 2 * second),
        rating(3, "us", 1, T0 + 3 * second),
    ];
    let mut bad = rating(4, "us", 2, T0 + 4 * second);
    bad["after"]["rating_id"] = json!("x");
    events.push(bad);
    events.push(rating(5, "eu", 4, T0 + 20 * second));
    s.produce(&events.iter().map(|v| (Some("k"), v.clone())).collect::<Vec<_>>())
        .await;
    let registry =
        RegistryClient::new(&s.fx.endpoints.registry_url, None, None, Duration::from_secs(30)).unwrap();
    (s, registry)
}

/// An aggregate written as Avro: key and value schemas registered under
/// `<topic>-key` / `<topic>-value`, read back the way a Confluent consumer
/// does (schema by id, apache-avro) with the types the query gave.
#[tokio::test(flavor = "multi_thread")]
async fn avro_aggregate_output_registers_schemas_and_reads_back_typed() {
    use apache_avro::types::Value as Avro;
    let (s, registry) = typed_output_fixture("stream-avro-agg").await;
    let counts = "INSERT INTO {out}
SELECT CAST(after.region AS VARCHAR) AS region, WINDOWSTART AS window_start,
       COUNT(*) AS ratings, AVG(after.rating) AS average
FROM {in}
WINDOW TUMBLING (SIZE 10 SECONDS)
GROUP BY CAST(after.region AS VARCHAR)
EMIT FINAL";
    let avro = "  output:\n    format: {key: avro, value: avro}\n";
    let mut worker = s.start(&s.yaml("counts", counts, avro), &unique_name("w"), "off");
    let out = s.wait_for(&s.output, 2, &mut worker).await;
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
    let mut rows = Vec::new();
    for record in &out {
        let key = decode_avro(&registry, record.key.as_deref().unwrap()).await;
        let value = decode_avro(&registry, record.value.as_deref().unwrap()).await;
        assert_eq!(field(&key, "region"), field(&value, "region"));
        assert_eq!(field(&key, "window_start"), &Avro::Long(T0));
        assert_eq!(field(&key, "window_end"), &Avro::Long(T0 + 10_000));
        rows.push((
            field(&value, "region").clone(),
            field(&value, "window_start").clone(),
            field(&value, "ratings").clone(),
            field(&value, "average").clone(),
        ));
    }
    rows.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        rows,
        vec![
            (
                Avro::String("eu".into()),
                Avro::Long(T0),
                Avro::Long(2),
                Avro::Double(3.5)
            ),
            (
                Avro::String("us".into()),
                Avro::Long(T0),
                Avro::Long(2),
                Avro::Double(1.5)
            ),
        ]
    );
    let subjects = registry.subjects().await.unwrap();
    for subject in [format!("{}-key", s.output), format!("{}-value", s.output)] {
        assert!(subjects.contains(&subject), "{subject} not in {subjects:?}");
    }
}

/// A projection keyed by a typed column, written as Avro; the row whose
/// value the column's CAST refuses is skipped and counted.
#[tokio::test(flavor = "multi_thread")]
async fn avro_projection_output_is_keyed_typed_and_skips_rows_that_do_not_fit() {
    use apache_avro::types::Value as Avro;
    let (s, registry) = typed_output_fixture("stream-avro-alerts").await;
    let alerts = "INSERT INTO {out}
SELECT CAST(after.rating_id AS BIGINT) AS id, CAST(after.rating AS BIGINT) AS rating,
       UPPER(after.region) AS region, after.rating = 1 AS urgent
FROM {in}
WHERE after.rating < 3";
    let http = free_addr();
    let keyed = "  output:\n    key: [id]\n    format: {key: avro, value: avro}\n";
    let mut worker = s.start(&s.yaml("alerts", alerts, keyed), &unique_name("w"), &http);
    let out = s.wait_for(&s.output, 2, &mut worker).await;
    assert_eq!(metric(&http, "stream_bad_records").await, 1);
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
    let mut got = Vec::new();
    for record in &out {
        let key = decode_avro(&registry, record.key.as_deref().unwrap()).await;
        let value = decode_avro(&registry, record.value.as_deref().unwrap()).await;
        // A one-column key is that column's type, not a record.
        assert_eq!(field(&value, "id"), &key);
        got.push((
            field(&value, "id").clone(),
            field(&value, "rating").clone(),
            field(&value, "region").clone(),
            field(&value, "urgent").clone(),
        ));
    }
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        got,
        vec![
            (
                Avro::Long(2),
                Avro::Long(2),
                Avro::String("EU".into()),
                Avro::Boolean(false)
            ),
            (
                Avro::Long(3),
                Avro::Long(1),
                Avro::String("US".into()),
                Avro::Boolean(true)
            ),
        ]
    );
}

/// A typed format with a column only the data could type is refused before
/// the worker touches Kafka, naming the field and the CAST to write.
#[test]
fn avro_output_without_a_type_is_refused_with_the_cast_to_write() {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique_name("typed-stream")));
    std::fs::write(
        &path,
        "apiVersion: tributary.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: typed\nspec:\n  sql: SELECT after.region AS region FROM ratings\n  output:\n    topic: out\n    key: [region]\n    format: {key: avro, value: avro}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tributary-worker"))
        .args(["validate", "-f"])
        .arg(&path)
        .args(["--bootstrap-servers", "127.0.0.1:9"])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("spec.output.format.value: avro: the type of column region is only known from the data; write CAST(after.region AS <type>) AS region"),
        "{stderr}"
    );
}
