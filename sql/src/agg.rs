//! Aggregate functions and their running state.
//!
//! An [`Accumulator`] is small and serialisable: the worker keeps one per
//! aggregate per group and window in memory and writes it to the changelog
//! topic, from which a restarted worker restores it. NULL inputs are
//! ignored (`COUNT(*)` counts rows); an aggregate over no non-NULL input is
//! NULL, except `COUNT`, which is 0.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EvalError;
use crate::eval::{compare, number, type_name};

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `COUNT(*)`: rows.
    CountRows,
    /// `COUNT(x)`: non-NULL values.
    Count,
    /// `SUM(x)`: integer while every input is, else float.
    Sum,
    /// `AVG(x)`: float.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
}

impl AggregateFunction {
    pub(crate) fn lookup(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => Self::Count,
            "SUM" => Self::Sum,
            "AVG" => Self::Avg,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            _ => return None,
        })
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CountRows | Self::Count => "COUNT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
        }
    }

    /// A fresh accumulator.
    pub fn start(self) -> Accumulator {
        match self {
            Self::CountRows | Self::Count => Accumulator::Count(0),
            Self::Sum => Accumulator::Sum {
                int: 0,
                float: 0.0,
                is_float: false,
                seen: false,
            },
            Self::Avg => Accumulator::Avg { sum: 0.0, count: 0 },
            Self::Min => Accumulator::Min(Value::Null),
            Self::Max => Accumulator::Max(Value::Null),
        }
    }
}

/// Running state of one aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Accumulator {
    /// Rows or non-NULL values so far.
    Count(i64),
    /// Sum so far.
    Sum {
        /// Integer sum while `is_float` is false.
        int: i64,
        /// Float sum once a float (or an integer overflow) was seen.
        float: f64,
        /// Whether the sum is a float.
        is_float: bool,
        /// Whether any non-NULL value was added.
        seen: bool,
    },
    /// Sum and count of non-NULL values.
    Avg {
        /// Sum.
        sum: f64,
        /// Count.
        count: i64,
    },
    /// Smallest value so far (NULL: none).
    Min(Value),
    /// Largest value so far (NULL: none).
    Max(Value),
}

impl Accumulator {
    /// Adds one input (`value` is the argument; `COUNT(*)` passes `true`).
    pub fn add(&mut self, value: &Value) -> Result<(), EvalError> {
        if value.is_null() {
            return Ok(());
        }
        match self {
            Self::Count(n) => *n += 1,
            Self::Sum {
                int,
                float,
                is_float,
                seen,
            } => {
                let Value::Number(x) = value else {
                    return Err(EvalError(format!("SUM needs numbers, got {}", type_name(value))));
                };
                *seen = true;
                if let (Some(i), false) = (x.as_i64(), *is_float) {
                    if let Some(sum) = int.checked_add(i) {
                        *int = sum;
                    } else {
                        #[allow(clippy::cast_precision_loss)] // overflowing integers continue as floats
                        let as_float = *int as f64 + i as f64;
                        *float = as_float;
                        *is_float = true;
                    }
                } else {
                    if !*is_float {
                        #[allow(clippy::cast_precision_loss)] // switching to a float sum
                        let start = *int as f64;
                        *float = start;
                        *is_float = true;
                    }
                    *float += x.as_f64().unwrap_or(0.0);
                }
            }
            Self::Avg { sum, count } => {
                let x = value
                    .as_f64()
                    .ok_or_else(|| EvalError(format!("AVG needs numbers, got {}", type_name(value))))?;
                *sum += x;
                *count += 1;
            }
            Self::Min(current) => {
                if current.is_null() || compare(value, current)? == Ordering::Less {
                    *current = value.clone();
                }
            }
            Self::Max(current) => {
                if current.is_null() || compare(value, current)? == Ordering::Greater {
                    *current = value.clone();
                }
            }
        }
        Ok(())
    }

    /// Folds another accumulator of the same function into this one (session merges).
    pub fn merge(&mut self, other: &Self) -> Result<(), EvalError> {
        match (self, other) {
            (Self::Count(a), Self::Count(b)) => *a += b,
            (
                this @ Self::Sum { .. },
                Self::Sum {
                    int,
                    float,
                    is_float,
                    seen,
                },
            ) => {
                if *seen {
                    let value = if *is_float {
                        number(*float)
                    } else {
                        Value::from(*int)
                    };
                    this.add(&value)?;
                }
            }
            (Self::Avg { sum, count }, Self::Avg { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (this @ (Self::Min(_) | Self::Max(_)), Self::Min(v) | Self::Max(v)) => this.add(v)?,
            _ => {
                return Err(EvalError(
                    "merging accumulators of different functions".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The aggregate's current value.
    pub fn value(&self) -> Value {
        match self {
            Self::Count(n) => Value::from(*n),
            Self::Sum {
                int,
                float,
                is_float,
                seen,
            } => match (seen, is_float) {
                (false, _) => Value::Null,
                (true, false) => Value::from(*int),
                (true, true) => number(*float),
            },
            Self::Avg { sum, count } => {
                if *count == 0 {
                    Value::Null
                } else {
                    #[allow(clippy::cast_precision_loss)] // averages are floats
                    let n = *count as f64;
                    number(sum / n)
                }
            }
            Self::Min(v) | Self::Max(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn aggregates_ignore_nulls_and_keep_integers() {
        let mut sum = AggregateFunction::Sum.start();
        let mut avg = AggregateFunction::Avg.start();
        let mut min = AggregateFunction::Min.start();
        let mut count = AggregateFunction::Count.start();
        for v in [json!(3), Value::Null, json!(1), json!(5)] {
            sum.add(&v).unwrap();
            avg.add(&v).unwrap();
            min.add(&v).unwrap();
            count.add(&v).unwrap();
        }
        assert_eq!(sum.value(), json!(9));
        assert_eq!(avg.value(), json!(3.0));
        assert_eq!(min.value(), json!(1));
        assert_eq!(count.value(), json!(3));
        sum.add(&json!(0.5)).unwrap();
        assert_eq!(sum.value(), json!(9.5));
        assert_eq!(AggregateFunction::Sum.start().value(), Value::Null);
        assert!(AggregateFunction::Sum.start().add(&json!("x")).is_err());
    }

    #[test]
    fn accumulators_survive_a_round_trip_through_json_and_merge() {
        let mut a = AggregateFunction::Max.start();
        a.add(&json!("b")).unwrap();
        let restored: Accumulator = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(restored, a);
        let mut b = AggregateFunction::Max.start();
        b.add(&json!("c")).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.value(), json!("c"));
    }
}
