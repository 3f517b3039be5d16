//! Records read from Kafka and not yet handed to a write, per partition.
//! Pure (no I/O, time passed in), so batching rules are unit-tested.
//!
//! Data model:
//!
//! ```text
//!   partition → FIFO of raw messages   (bytes counted, all partitions together)
//!   busy      = partitions with a write in flight
//! ```
//!
//! A batch takes records only from partitions that are not busy, oldest
//! first, and marks them busy until [`Buffers::release`]. So a partition
//! has at most one write in flight and its records reach the target in
//! offset order (a later update never overtakes an earlier one), while
//! different partitions are written in parallel. A batch is cut when the
//! ready records reach `max_records` or `max_bytes`, or when the oldest
//! ready record has waited `linger`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::Header;

/// A topic and partition.
pub type Partition = (Arc<str>, i32);

/// A message as read from Kafka, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Kafka timestamp (ms since the epoch).
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl RawRecord {
    /// Bytes held (key, value, headers), for the memory bound.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + 64
    }

    /// Its partition.
    pub fn tp(&self) -> Partition {
        (Arc::clone(&self.topic), self.partition)
    }
}

/// When a batch is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most records per batch.
    pub max_records: usize,
    /// Most bytes per batch (a single larger record still makes a batch).
    pub max_bytes: usize,
    /// Longest wait of a partial batch.
    pub linger: Duration,
}

#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<(RawRecord, Instant)>,
    bytes: usize,
}

/// The per-partition buffers. See the module docs.
#[derive(Debug, Default)]
pub struct Buffers {
    queues: BTreeMap<Partition, Queue>,
    busy: BTreeSet<Partition>,
    bytes: usize,
    records: usize,
}

impl Buffers {
    /// Appends a record read at `now`.
    pub fn push(&mut self, record: RawRecord, now: Instant) {
        let size = record.size();
        let queue = self.queues.entry(record.tp()).or_default();
        queue.bytes += size;
        queue.records.push_back((record, now));
        self.bytes += size;
        self.records += 1;
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records buffered.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// True while `tp` has a write in flight.
    pub fn is_busy(&self, tp: &Partition) -> bool {
        self.busy.contains(tp)
    }

    /// When the oldest ready record's linger ends (`None`: nothing ready).
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        self.ready()
            .filter_map(|(_, q)| q.records.front().map(|(_, at)| *at + limits.linger))
            .min()
    }

    fn ready(&self) -> impl Iterator<Item = (&Partition, &Queue)> {
        self.queues
            .iter()
            .filter(|(tp, q)| !q.records.is_empty() && !self.busy.contains(*tp))
    }

    /// Cuts a batch if one is due at `now` (`flush`: whatever is ready).
    /// Its partitions become busy.
    pub fn take(&mut self, limits: &Limits, now: Instant, flush: bool) -> Option<Vec<RawRecord>> {
        let (ready_records, ready_bytes) = self
            .ready()
            .fold((0, 0), |(n, b), (_, q)| (n + q.records.len(), b + q.bytes));
        let due = flush
            || ready_records >= limits.max_records
            || ready_bytes >= limits.max_bytes
            || self.deadline(limits).is_some_and(|d| d <= now);
        if ready_records == 0 || !due {
            return None;
        }
        // Oldest partitions first, so none starves behind a busy one.
        let mut order: Vec<(Instant, Partition)> = self
            .ready()
            .filter_map(|(tp, q)| q.records.front().map(|(_, at)| (*at, tp.clone())))
            .collect();
        order.sort();
        let mut batch = Vec::new();
        let mut bytes = 0;
        'partitions: for (_, tp) in order {
            let Some(queue) = self.queues.get_mut(&tp) else {
                continue;
            };
            let mut took = false;
            while let Some((record, _)) = queue.records.front() {
                let size = record.size();
                if batch.len() >= limits.max_records || (!batch.is_empty() && bytes + size > limits.max_bytes)
                {
                    if took {
                        self.busy.insert(tp);
                    }
                    break 'partitions;
                }
                let Some((record, _)) = queue.records.pop_front() else {
                    break;
                };
                queue.bytes -= size;
                self.bytes -= size;
                self.records -= 1;
                bytes += size;
                batch.push(record);
                took = true;
            }
            if took {
                self.busy.insert(tp);
            }
        }
        self.queues.retain(|_, q| !q.records.is_empty());
        Some(batch)
    }

    /// The write of `tp` finished: it may be batched again.
    pub fn release(&mut self, tp: &Partition) {
        self.busy.remove(tp);
    }

    /// Drops the buffered records of `tp` (revoked in a rebalance). A write
    /// in flight keeps it busy until it finishes, so a new owner's records
    /// never overtake it here.
    pub fn drop_partition(&mut self, tp: &Partition) {
        if let Some(queue) = self.queues.remove(tp) {
            self.bytes -= queue.bytes;
            self.records -= queue.records.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(topic: &str, partition: i32, offset: i64, bytes: usize) -> RawRecord {
        RawRecord {
            topic: Arc::from(topic),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: Some(vec![b'x'; bytes]),
            headers: Vec::new(),
        }
    }

    fn limits(max_records: usize, max_bytes: usize, linger_ms: u64) -> Limits {
        Limits {
            max_records,
            max_bytes,
            linger: Duration::from_millis(linger_ms),
        }
    }

    fn offsets(batch: &[RawRecord]) -> Vec<(i32, i64)> {
        batch.iter().map(|r| (r.partition, r.offset)).collect()
    }

    #[test]
    fn a_batch_is_cut_by_count_bytes_or_linger() {
        let t0 = Instant::now();
        let mut buffers = Buffers::default();
        for offset in 0..3 {
            buffers.push(raw("t", 0, offset, 10), t0);
        }
        let l = limits(5, 1 << 20, 100);
        assert!(buffers.take(&l, t0, false).is_none(), "not full, linger not over");
        assert_eq!(buffers.deadline(&l), Some(t0 + Duration::from_millis(100)));
        let batch = buffers.take(&l, t0 + Duration::from_millis(100), false).unwrap();
        assert_eq!(offsets(&batch), vec![(0, 0), (0, 1), (0, 2)]);
        assert!(buffers.is_empty());
        buffers.release(&(Arc::from("t"), 0));

        for offset in 3..10 {
            buffers.push(raw("t", 0, offset, 10), t0);
        }
        let by_count = buffers.take(&limits(5, 1 << 20, 60_000), t0, false).unwrap();
        assert_eq!(by_count.len(), 5);
        buffers.release(&(Arc::from("t"), 0));
        // 2 left of 74 bytes each (10 + 64 overhead): 150 bytes cut one record at a time.
        let by_bytes = buffers.take(&limits(100, 150, 60_000), t0, false);
        assert!(by_bytes.is_none(), "148 bytes ready, under 150");
        buffers.push(raw("t", 0, 10, 10), t0);
        let by_bytes = buffers.take(&limits(100, 150, 60_000), t0, false).unwrap();
        assert_eq!(offsets(&by_bytes), vec![(0, 8), (0, 9)]);
        assert_eq!(buffers.len(), 1);
        assert_eq!(buffers.bytes(), 74);
    }

    #[test]
    fn a_partition_has_one_write_in_flight_and_others_go_on() {
        let t0 = Instant::now();
        let mut buffers = Buffers::default();
        let l = limits(2, 1 << 20, 0);
        buffers.push(raw("t", 0, 0, 1), t0);
        buffers.push(raw("t", 0, 1, 1), t0);
        buffers.push(raw("t", 0, 2, 1), t0);
        let first = buffers.take(&l, t0, false).unwrap();
        assert_eq!(offsets(&first), vec![(0, 0), (0, 1)]);
        assert!(buffers.is_busy(&(Arc::from("t"), 0)));
        assert!(
            buffers.take(&l, t0, true).is_none(),
            "offset 2 waits for the write of 0-1"
        );
        buffers.push(raw("t", 1, 0, 1), t0);
        let other = buffers.take(&l, t0, false).unwrap();
        assert_eq!(offsets(&other), vec![(1, 0)], "partition 1 is written meanwhile");
        buffers.release(&(Arc::from("t"), 0));
        assert_eq!(offsets(&buffers.take(&l, t0, false).unwrap()), vec![(0, 2)]);
    }

    #[test]
    fn the_oldest_partition_goes_first_and_a_revoked_one_is_dropped() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        let mut buffers = Buffers::default();
        buffers.push(raw("b", 0, 7, 1), later);
        buffers.push(raw("a", 0, 3, 1), t0);
        buffers.push(raw("c", 0, 1, 1), t0);
        buffers.drop_partition(&(Arc::from("c"), 0));
        assert_eq!(buffers.len(), 2);
        let batch = buffers.take(&limits(1, 1 << 20, 0), later, false).unwrap();
        assert_eq!(&*batch[0].topic, "a");
        let batch = buffers.take(&limits(1, 1 << 20, 0), later, false).unwrap();
        assert_eq!(&*batch[0].topic, "b");
        assert!(buffers.is_empty());
        assert_eq!(buffers.bytes(), 0);
    }
}
