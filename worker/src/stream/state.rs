//! Aggregate state of one repartition partition (a task): one entry per
//! group and window, the partition's stream time, and their changelog
//! encoding.
//!
//! Each group lives on exactly one partition of the repartition topic, so
//! a task's state is complete for its groups, and moves with the partition
//! on a rebalance. Changes are written at each commit to the same partition
//! number of the compacted changelog topic: key `{"g":[groups],"w":start}`,
//! value [`StoredEntry`] (a tombstone once the window closed), plus the key
//! [`STREAM_TIME_KEY`] holding the stream time, so late records are judged
//! the same after a restore.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_sql::Accumulator;

/// Group key (the repartition record's key: the JSON array of group values)
/// and window start (0 without a window).
pub(crate) type StateKey = (Arc<[u8]>, i64);

/// Changelog key of the stream time.
pub(crate) const STREAM_TIME_KEY: &[u8] = b"\"__stream_time\"";

/// One group in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredEntry {
    /// The group values.
    pub groups: Vec<Value>,
    /// One accumulator per aggregate.
    pub accs: Vec<Accumulator>,
    /// Window start (0 without a window).
    pub start: i64,
    /// Window end (`i64::MAX` without a window).
    pub end: i64,
    /// Largest event time added (the result's timestamp).
    pub ts: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    g: Value,
    w: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredTime {
    stream_time: i64,
}

/// The state of one partition.
#[derive(Debug, Default)]
pub(crate) struct Task {
    /// Largest event time seen (`None`: nothing yet).
    pub stream_time: Option<i64>,
    /// Whether the stream time changed since the last commit.
    pub stream_time_dirty: bool,
    /// Entries by key.
    pub entries: HashMap<StateKey, StoredEntry>,
    /// Entries by window end, to find closed windows without a scan.
    pub by_end: BTreeSet<(i64, StateKey)>,
    /// Entries changed since the last commit.
    pub dirty: HashSet<StateKey>,
    /// Window starts per group (session windows look up a group's sessions).
    pub starts: HashMap<Arc<[u8]>, BTreeSet<i64>>,
}

impl Task {
    /// Advances the stream time to `ts` (it never goes back).
    pub fn observe(&mut self, ts: i64) -> i64 {
        advance(&mut self.stream_time, &mut self.stream_time_dirty, ts)
    }

    /// Inserts a restored or new entry.
    pub fn insert(&mut self, key: StateKey, entry: StoredEntry) {
        self.by_end.insert((entry.end, key.clone()));
        self.starts.entry(Arc::clone(&key.0)).or_default().insert(key.1);
        self.entries.insert(key, entry);
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &StateKey) -> Option<StoredEntry> {
        let entry = self.entries.remove(key)?;
        self.by_end.remove(&(entry.end, key.clone()));
        if let Some(starts) = self.starts.get_mut(&key.0) {
            starts.remove(&key.1);
            if starts.is_empty() {
                self.starts.remove(&key.0);
            }
        }
        self.dirty.remove(key);
        Some(entry)
    }

    /// Applies one changelog record (restore).
    pub fn apply_changelog(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if key == STREAM_TIME_KEY {
            if let Some(value) = value {
                self.stream_time = Some(decode_stream_time(value)?);
            }
            return Ok(());
        }
        let state_key = decode_key(key)?;
        match value {
            None => {
                self.remove(&state_key);
            }
            Some(value) => {
                let entry: StoredEntry = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                self.remove(&state_key);
                self.insert(state_key, entry);
            }
        }
        Ok(())
    }
}

/// Advances a partition's stream time to `ts` (it never goes back), marking
/// it `dirty` when it moved; returns the stream time.
pub(crate) fn advance(stream_time: &mut Option<i64>, dirty: &mut bool, ts: i64) -> i64 {
    match *stream_time {
        Some(current) if current >= ts => current,
        _ => {
            *stream_time = Some(ts);
            *dirty = true;
            ts
        }
    }
}

/// The changelog key of an entry.
pub(crate) fn encode_key(key: &StateKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.0.len() + 32);
    out.extend_from_slice(b"{\"g\":");
    out.extend_from_slice(&key.0);
    out.extend_from_slice(format!(",\"w\":{}}}", key.1).as_bytes());
    out
}

fn decode_key(bytes: &[u8]) -> Result<StateKey, String> {
    let key: StoredKey = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let group = serde_json::to_vec(&key.g).map_err(|e| e.to_string())?;
    Ok((Arc::from(group), key.w))
}

/// The stream time of its changelog value.
pub(crate) fn decode_stream_time(value: &[u8]) -> Result<i64, String> {
    serde_json::from_slice::<StoredTime>(value)
        .map(|t| t.stream_time)
        .map_err(|e| e.to_string())
}

/// The changelog value of the stream time.
pub(crate) fn encode_stream_time(stream_time: i64) -> Vec<u8> {
    serde_json::to_vec(&StoredTime { stream_time }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tributary_sql::AggregateFunction;

    use super::*;

    #[test]
    fn the_changelog_restores_entries_tombstones_and_stream_time() {
        let key: StateKey = (Arc::from(serde_json::to_vec(&json!(["eu"])).unwrap()), 60_000);
        let mut acc = AggregateFunction::CountRows.start();
        acc.add(&json!(true)).unwrap();
        let entry = StoredEntry {
            groups: vec![json!("eu")],
            accs: vec![acc],
            start: 60_000,
            end: 120_000,
            ts: 61_000,
        };
        let other: StateKey = (Arc::from(serde_json::to_vec(&json!(["us"])).unwrap()), 60_000);
        let mut task = Task::default();
        let value = serde_json::to_vec(&entry).unwrap();
        task.apply_changelog(&encode_key(&key), Some(&value)).unwrap();
        task.apply_changelog(&encode_key(&other), Some(&value)).unwrap();
        task.apply_changelog(&encode_key(&other), None).unwrap();
        task.apply_changelog(STREAM_TIME_KEY, Some(&encode_stream_time(61_000)))
            .unwrap();
        assert_eq!(task.entries.len(), 1);
        assert_eq!(task.entries[&key], entry);
        assert_eq!(task.by_end.len(), 1);
        assert_eq!(task.stream_time, Some(61_000));
        assert!(task.apply_changelog(b"{\"g\":", Some(&value)).is_err());
    }
}
