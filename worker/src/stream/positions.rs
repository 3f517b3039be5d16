//! The consumed positions the next commit writes: per input partition, the
//! offset after the last record processed since the previous commit.
//!
//! Updated once per record, so it avoids hashing: records arrive in runs
//! from one partition, the entry used last is checked first, and a worker
//! owns few partitions, so a miss is a short scan.

/// Next offset to commit per (topic, partition) processed since the last commit.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    entries: Vec<Position>,
    /// Index of the entry updated last.
    last: usize,
}

#[derive(Debug)]
struct Position {
    topic: String,
    partition: i32,
    next: i64,
}

impl Position {
    fn is(&self, topic: &str, partition: i32) -> bool {
        self.partition == partition && self.topic == topic
    }
}

impl Positions {
    /// Notes that `next` is the offset after the last processed record of
    /// `topic`/`partition`.
    pub fn record(&mut self, topic: &str, partition: i32, next: i64) {
        if let Some(entry) = self.entries.get_mut(self.last)
            && entry.is(topic, partition)
        {
            entry.next = next;
            return;
        }
        if let Some(index) = self.entries.iter().position(|e| e.is(topic, partition)) {
            self.entries[index].next = next;
            self.last = index;
        } else {
            self.last = self.entries.len();
            self.entries.push(Position {
                topic: topic.to_owned(),
                partition,
                next,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(topic, partition, next offset)` of every partition processed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.entries
            .iter()
            .map(|e| (e.topic.as_str(), e.partition, e.next))
    }

    /// Forgets everything (after a commit).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.last = 0;
    }

    /// Forgets one partition (revoked).
    pub fn remove(&mut self, topic: &str, partition: i32) {
        self.entries.retain(|e| !e.is(topic, partition));
        self.last = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(positions: &Positions) -> Vec<(String, i32, i64)> {
        let mut all: Vec<_> = positions.iter().map(|(t, p, o)| (t.to_owned(), p, o)).collect();
        all.sort();
        all
    }

    #[test]
    fn keeps_the_latest_offset_per_partition_across_interleaved_runs() {
        let mut positions = Positions::default();
        assert!(positions.is_empty());
        positions.record("a", 0, 1);
        positions.record("a", 0, 2);
        positions.record("a", 1, 7);
        positions.record("b", 0, 4);
        positions.record("a", 0, 3);
        positions.record("b", 0, 5);
        assert_eq!(
            listed(&positions),
            [("a".into(), 0, 3), ("a".into(), 1, 7), ("b".into(), 0, 5)]
        );
        positions.remove("a", 0);
        positions.record("a", 1, 8);
        positions.record("a", 0, 10);
        assert_eq!(
            listed(&positions),
            [("a".into(), 0, 10), ("a".into(), 1, 8), ("b".into(), 0, 5)]
        );
        positions.clear();
        assert!(positions.is_empty());
        positions.record("b", 2, 1);
        assert_eq!(listed(&positions), [("b".into(), 2, 1)]);
    }
}
