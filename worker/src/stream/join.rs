//! State of a stream-stream join for one repartition partition (a task):
//! the rows of both inputs that may still find a partner, the partition's
//! stream time, and their changelog encoding.
//!
//! Data model: both inputs are written to `<group>-repartition` keyed by
//! their join key (canonical JSON), so rows that can match meet on one
//! partition. A task buffers every row it accepts, indexed by input and
//! join key, until stream time (the largest event time the partition has
//! seen) passes [`JoinWindow::expires_after`]: then no record that is not
//! late can match it any more, it leaves the buffer, and an unmatched FROM
//! row of a LEFT join is written with NULLs. A row is identified by its
//! repartition offset, unique within the partition.
//!
//! Changes are written at each commit to the same partition of the
//! compacted `<group>-changelog`: key `{"j":<offset>}`, value
//! [`BufferedRow`] (a tombstone once it left the buffer), plus the stream
//! time under [`state::STREAM_TIME_KEY`], so a restarted or rebalanced task
//! matches, expires and judges lateness exactly as the one before it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_sql::JoinWindow;

use super::state;

/// A record of the repartition topic of a stream-stream join: one input row
/// with what its pseudo columns need (the join key is the record key, event
/// time its timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Routed {
    /// Input: 0 (FROM) or 1 (joined).
    pub s: usize,
    /// The input record's key, decoded (`ROWKEY`).
    pub k: Value,
    /// The input record's partition (`ROWPARTITION`).
    pub p: i32,
    /// The input record's offset (`ROWOFFSET`).
    pub o: i64,
    /// The row.
    pub v: Value,
}

/// A row waiting for partners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BufferedRow {
    /// The routed record.
    pub row: Routed,
    /// Its join key (canonical JSON), as text.
    pub key: String,
    /// Its event time.
    pub ts: i64,
    /// FROM rows: whether a joined row matched it (a LEFT join then writes
    /// no unmatched row for it).
    pub matched: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    j: i64,
}

/// The buffered rows of one partition.
#[derive(Debug, Default)]
pub(crate) struct JoinTask {
    /// Largest event time seen (`None`: nothing yet).
    pub stream_time: Option<i64>,
    /// Whether the stream time changed since the last commit.
    pub stream_time_dirty: bool,
    /// Rows by id (repartition offset).
    rows: HashMap<i64, BufferedRow>,
    /// Ids by input and join key, in arrival order.
    by_key: HashMap<(usize, Arc<str>), BTreeSet<i64>>,
    /// Ids by the stream time after which they expire.
    by_expiry: BTreeSet<(i64, i64)>,
    /// Ids written or deleted since the last commit.
    dirty: HashSet<i64>,
}

impl JoinTask {
    /// Advances the stream time to `ts` (it never goes back).
    pub fn observe(&mut self, ts: i64) -> i64 {
        state::advance(&mut self.stream_time, &mut self.stream_time_dirty, ts)
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Ids of the buffered rows of input `side` with join key `key` whose
    /// event time matches `ts` (of a row of the other input), oldest first.
    pub fn partners(&self, side: usize, key: &str, ts: i64, window: &JoinWindow) -> Vec<i64> {
        let Some(ids) = self.by_key.get(&(1 - side, Arc::from(key))) else {
            return Vec::new();
        };
        ids.iter()
            .copied()
            .filter(|id| {
                self.rows.get(id).is_some_and(|other| {
                    let (left, right) = if side == 0 { (ts, other.ts) } else { (other.ts, ts) };
                    window.matches(left, right)
                })
            })
            .collect()
    }

    /// A buffered row.
    pub fn get(&self, id: i64) -> Option<&BufferedRow> {
        self.rows.get(&id)
    }

    /// Marks a buffered FROM row as matched.
    pub fn set_matched(&mut self, id: i64) {
        if let Some(row) = self.rows.get_mut(&id)
            && !row.matched
        {
            row.matched = true;
            self.dirty.insert(id);
        }
    }

    /// Buffers a row until stream time passes `expires`.
    pub fn insert(&mut self, id: i64, row: BufferedRow, expires: i64) {
        self.by_key
            .entry((row.row.s, Arc::from(row.key.as_str())))
            .or_default()
            .insert(id);
        self.by_expiry.insert((expires, id));
        self.rows.insert(id, row);
        self.dirty.insert(id);
    }

    /// Removes and returns the rows that expired at the current stream time.
    pub fn expire(&mut self) -> Vec<BufferedRow> {
        let Some(stream_time) = self.stream_time else {
            return Vec::new();
        };
        let mut expired = Vec::new();
        while let Some(&(expires, id)) = self.by_expiry.first() {
            if expires >= stream_time {
                break;
            }
            self.by_expiry.pop_first();
            if let Some(row) = self.remove(id) {
                expired.push(row);
            }
        }
        expired
    }

    fn remove(&mut self, id: i64) -> Option<BufferedRow> {
        let row = self.rows.remove(&id)?;
        let index = (row.row.s, Arc::from(row.key.as_str()));
        if let Some(ids) = self.by_key.get_mut(&index) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_key.remove(&index);
            }
        }
        self.dirty.insert(id);
        Some(row)
    }

    /// The changelog records of the changes since the last call: `(key,
    /// value)`, a `None` value deleting a row; the stream time last.
    pub fn drain_changes(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut ids: Vec<i64> = self.dirty.drain().collect();
        ids.sort_unstable();
        let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = ids
            .into_iter()
            .map(|id| {
                let value = self
                    .rows
                    .get(&id)
                    .map(|row| serde_json::to_vec(row).unwrap_or_default());
                (encode_key(id), value)
            })
            .collect();
        if self.stream_time_dirty
            && let Some(time) = self.stream_time
        {
            out.push((
                state::STREAM_TIME_KEY.to_vec(),
                Some(state::encode_stream_time(time)),
            ));
        }
        self.stream_time_dirty = false;
        out
    }

    /// Applies one changelog record (restore).
    pub fn apply_changelog(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        window: &JoinWindow,
    ) -> Result<(), String> {
        if key == state::STREAM_TIME_KEY {
            if let Some(value) = value {
                self.stream_time = Some(state::decode_stream_time(value)?);
            }
            return Ok(());
        }
        let id = serde_json::from_slice::<StoredKey>(key)
            .map_err(|e| e.to_string())?
            .j;
        if let Some(old) = self.remove(id) {
            self.by_expiry
                .remove(&(window.expires_after(old.row.s, old.ts), id));
        }
        if let Some(value) = value {
            let row: BufferedRow = serde_json::from_slice(value).map_err(|e| e.to_string())?;
            let expires = window.expires_after(row.row.s, row.ts);
            self.insert(id, row, expires);
        }
        Ok(())
    }

    /// After a restore: nothing is dirty (it all came from the changelog).
    pub fn restored(&mut self) {
        self.dirty.clear();
        self.stream_time_dirty = false;
    }
}

fn encode_key(id: i64) -> Vec<u8> {
    format!("{{\"j\":{id}}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(side: usize, key: &str, ts: i64) -> BufferedRow {
        BufferedRow {
            row: Routed {
                s: side,
                k: json!(key),
                p: 0,
                o: ts,
                v: json!({"ts": ts}),
            },
            key: format!("\"{key}\""),
            ts,
            matched: false,
        }
    }

    const WINDOW: JoinWindow = JoinWindow {
        before_ms: 1000,
        after_ms: 5000,
        grace_ms: 0,
    };

    #[test]
    fn partners_are_found_by_key_and_time_and_expire_with_stream_time() {
        let mut task = JoinTask::default();
        task.observe(10_000);
        task.insert(1, row(0, "a", 10_000), WINDOW.expires_after(0, 10_000));
        task.insert(2, row(1, "a", 9_500), WINDOW.expires_after(1, 9_500));
        // A joined row 5 s after the FROM row matches it; 6 s does not.
        assert_eq!(task.partners(1, "\"a\"", 15_000, &WINDOW), vec![1]);
        assert!(task.partners(1, "\"a\"", 16_000, &WINDOW).is_empty());
        assert!(task.partners(1, "\"b\"", 15_000, &WINDOW).is_empty());
        // A FROM row 1 s after the joined row matches it.
        assert_eq!(task.partners(0, "\"a\"", 10_500, &WINDOW), vec![2]);
        // Stream time 10.6 s: the joined row (reach 1 s) is gone, the FROM row (reach 5 s) stays.
        task.observe(10_600);
        let expired = task.expire();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].row.s, 1);
        assert_eq!(task.len(), 1);
        task.observe(15_001);
        assert_eq!(task.expire().len(), 1);
        assert_eq!(task.len(), 0);
    }

    #[test]
    fn the_changelog_restores_rows_matches_deletions_and_stream_time() {
        let mut task = JoinTask::default();
        task.observe(10_000);
        task.insert(1, row(0, "a", 10_000), WINDOW.expires_after(0, 10_000));
        task.insert(2, row(0, "b", 10_000), WINDOW.expires_after(0, 10_000));
        task.insert(3, row(1, "c", 10_000), WINDOW.expires_after(1, 10_000));
        let mut changes = task.drain_changes();
        task.set_matched(1);
        task.observe(11_001);
        let expired = task.expire(); // the joined row 3
        assert_eq!(expired.len(), 1);
        changes.extend(task.drain_changes());
        assert!(task.drain_changes().is_empty(), "nothing changed since");

        let mut restored = JoinTask::default();
        for (key, value) in &changes {
            restored.apply_changelog(key, value.as_deref(), &WINDOW).unwrap();
        }
        restored.restored();
        assert_eq!(restored.stream_time, Some(11_001));
        assert_eq!(restored.len(), 2);
        assert!(restored.get(1).unwrap().matched);
        assert!(!restored.get(2).unwrap().matched);
        assert!(restored.get(3).is_none());
        assert_eq!(restored.partners(1, "\"b\"", 12_000, &WINDOW), vec![2]);
        assert!(restored.drain_changes().is_empty());
        assert!(
            restored
                .apply_changelog(b"{\"j\":", Some(b"{}"), &WINDOW)
                .is_err()
        );
    }
}
