//! Synthetic records for demos and benchmarks: product ratings or shop
//! orders, at a fixed rate or as fast as Kafka takes them.
//!
//! Values are plain JSON objects (or the Connect envelope with
//! `json-with-schema`); the key is the record's id. The sequence is
//! determined by `seed`, so two runs with the same seed produce the same
//! records.

use std::time::Duration;

use pg_walstream::CancellationToken;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tributary_api::connector::{DatagenSource, Dataset};

use super::RunContext;
use crate::delivery::{DeliveryError, OutRecord};
use crate::format::{FormatError, encode};

/// The datagen source failed.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    /// Kafka did not take the records.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Serialising failed.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Regions ratings come from.
pub const REGIONS: [&str; 6] = ["north", "south", "east", "west", "central", "islands"];

/// One generated record's key and value, `n` being its sequence number (pure).
pub fn generate(
    dataset: Dataset,
    n: u64,
    key_space: u32,
    rng: &mut StdRng,
    now_millis: i64,
) -> (Value, Value) {
    match dataset {
        Dataset::Ratings => {
            let customer = rng.random_range(0..key_space);
            let rating: u8 = rng.random_range(1..=5);
            let region = REGIONS[rng.random_range(0..REGIONS.len())];
            (
                json!({"rating_id": n}),
                json!({
                    "rating_id": n,
                    "customer_id": customer,
                    "product_id": rng.random_range(0..500_u32),
                    "region": region,
                    "rating": rating,
                    "comment": if rating < 3 { "not happy" } else { "fine" },
                    "ts": now_millis,
                }),
            )
        }
        Dataset::Orders => {
            let quantity: u32 = rng.random_range(1..=10);
            let cents: u32 = rng.random_range(100..100_000);
            (
                json!({"order_id": n}),
                json!({
                    "order_id": n,
                    "customer_id": rng.random_range(0..key_space),
                    "product_id": rng.random_range(0..500_u32),
                    "quantity": quantity,
                    "price": f64::from(cents) / 100.0,
                    "ts": now_millis,
                }),
            )
        }
    }
}

fn schemas(dataset: Dataset) -> (Value, Value) {
    let field = |name: &str, type_: &str| json!({"field": name, "type": type_, "optional": false});
    let (id, fields) = match dataset {
        Dataset::Ratings => (
            "rating_id",
            vec![
                field("rating_id", "int64"),
                field("customer_id", "int32"),
                field("product_id", "int32"),
                field("region", "string"),
                field("rating", "int8"),
                field("comment", "string"),
                field("ts", "int64"),
            ],
        ),
        Dataset::Orders => (
            "order_id",
            vec![
                field("order_id", "int64"),
                field("customer_id", "int32"),
                field("product_id", "int32"),
                field("quantity", "int32"),
                field("price", "double"),
                field("ts", "int64"),
            ],
        ),
    };
    let name = match dataset {
        Dataset::Ratings => "tributary.datagen.Rating",
        Dataset::Orders => "tributary.datagen.Order",
    };
    (
        json!({"type": "struct", "optional": false, "name": format!("{name}Key"), "fields": [field(id, "int64")]}),
        json!({"type": "struct", "optional": false, "name": name, "fields": fields}),
    )
}

/// Produces records until `max_records` or `shutdown`; returns how many.
pub async fn run(
    ctx: &RunContext,
    spec: &DatagenSource,
    shutdown: CancellationToken,
) -> Result<u64, DatagenError> {
    ctx.telemetry.set_state("Generating");
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let (key_schema, value_schema) = schemas(spec.dataset);
    let (key_schema, value_schema) = ctx
        .serializers
        .prepare(&spec.topic, &key_schema, &value_schema)
        .await?;
    // Rate limiting in slices of 10 ms keeps bursts small at any rate.
    let slice = Duration::from_millis(10);
    let per_slice = spec.records_per_second.map(|r| (f64::from(r) / 100.0).max(0.0));
    let mut ticker = tokio::time::interval(slice);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut credit = 0.0_f64;
    let mut sent = 0_u64;
    while spec.max_records.is_none_or(|max| sent < max) && !shutdown.is_cancelled() {
        let batch = match per_slice {
            Some(rate) => {
                ticker.tick().await;
                credit += rate;
                let whole = credit.floor();
                credit -= whole;
                // Bounded by the per-slice rate, which fits in u64.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let whole = whole as u64;
                whole
            }
            None => 1_000,
        };
        let batch = spec.max_records.map_or(batch, |max| batch.min(max - sent));
        let now_millis = crate::now_micros() / 1000;
        for _ in 0..batch {
            let (key, value) = generate(spec.dataset, sent, spec.key_space, &mut rng, now_millis);
            ctx.pipeline
                .send(OutRecord {
                    topic: spec.topic.clone(),
                    key: Some(encode(&key_schema, &key)?),
                    value: Some(encode(&value_schema, &value)?),
                })
                .await?;
            sent += 1;
        }
    }
    ctx.pipeline.flush().await?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_records() {
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        for n in 0..100 {
            assert_eq!(
                generate(Dataset::Ratings, n, 10, &mut a, 0),
                generate(Dataset::Ratings, n, 10, &mut b, 0)
            );
        }
    }

    #[test]
    fn ratings_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in 0..1_000 {
            let (key, value) = generate(Dataset::Ratings, n, 50, &mut rng, 0);
            assert_eq!(key["rating_id"], n);
            let rating = value["rating"].as_u64().unwrap();
            assert!((1..=5).contains(&rating));
            assert!(value["customer_id"].as_u64().unwrap() < 50);
            assert!(REGIONS.contains(&value["region"].as_str().unwrap()));
        }
    }
}
