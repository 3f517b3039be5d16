//! Windows over event time: which windows a record belongs to, when a
//! window closes, and how sessions merge.
//!
//! Times are epoch milliseconds. A window `[start, end)` closes when the
//! partition's stream time (the largest event time seen) reaches
//! `end + grace`; a record for a closed window is late, dropped and counted.

use serde::{Deserialize, Serialize};

/// The `WINDOW` clause of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// Fixed, non-overlapping windows of `size_ms`, aligned to the epoch.
    Tumbling {
        /// Length.
        size_ms: u64,
        /// How long after its end a window still accepts records.
        grace_ms: u64,
    },
    /// Windows of `size_ms` starting every `advance_ms` (aligned to the
    /// epoch); a record belongs to `size / advance` of them.
    Hopping {
        /// Length.
        size_ms: u64,
        /// Distance between starts.
        advance_ms: u64,
        /// How long after its end a window still accepts records.
        grace_ms: u64,
    },
    /// Per key, records closer than `gap_ms` to each other form one session
    /// `[first, last + 1)`; a record between two sessions merges them.
    Session {
        /// Inactivity that ends a session.
        gap_ms: u64,
        /// How long after its end a session still accepts records.
        grace_ms: u64,
    },
}

impl Window {
    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        let grace = match self {
            Self::Tumbling { grace_ms, .. }
            | Self::Hopping { grace_ms, .. }
            | Self::Session { grace_ms, .. } => *grace_ms,
        };
        i64::try_from(grace).unwrap_or(i64::MAX)
    }

    /// The `[start, end)` windows a record at `ts` belongs to (fixed windows;
    /// empty for sessions, which are computed per key by [`merge_sessions`]).
    pub fn assign(&self, ts: i64) -> Vec<(i64, i64)> {
        match *self {
            Self::Tumbling { size_ms, .. } => {
                let size = to_i64(size_ms);
                let start = ts - ts.rem_euclid(size);
                vec![(start, start.saturating_add(size))]
            }
            Self::Hopping {
                size_ms, advance_ms, ..
            } => {
                let (size, advance) = (to_i64(size_ms), to_i64(advance_ms));
                let mut start = ts - ts.rem_euclid(advance);
                let mut windows = Vec::new();
                while start > ts.saturating_sub(size) {
                    windows.push((start, start.saturating_add(size)));
                    start -= advance;
                }
                windows.reverse();
                windows
            }
            Self::Session { .. } => Vec::new(),
        }
    }

    /// True when the window ending at `end` (exclusive) no longer accepts
    /// records at stream time `stream_time`: `end + grace` for fixed windows;
    /// for a session, whose end is its last record + 1, when no record can
    /// extend it any more (`last + gap + grace`).
    pub fn is_closed(&self, end: i64, stream_time: i64) -> bool {
        let close = match self {
            Self::Session { gap_ms, .. } => {
                (end - 1).saturating_add(i64::try_from(*gap_ms).unwrap_or(i64::MAX))
            }
            _ => end,
        };
        close.saturating_add(self.grace_ms()) <= stream_time
    }

    /// Short description for explain output.
    pub fn describe(&self) -> String {
        match self {
            Self::Tumbling { size_ms, grace_ms } => {
                format!(
                    "TUMBLING size={} grace={}",
                    duration(*size_ms),
                    duration(*grace_ms)
                )
            }
            Self::Hopping {
                size_ms,
                advance_ms,
                grace_ms,
            } => format!(
                "HOPPING size={} advance={} grace={}",
                duration(*size_ms),
                duration(*advance_ms),
                duration(*grace_ms)
            ),
            Self::Session { gap_ms, grace_ms } => {
                format!("SESSION gap={} grace={}", duration(*gap_ms), duration(*grace_ms))
            }
        }
    }
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

fn duration(ms: u64) -> String {
    match ms {
        0 => "0".to_owned(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// A session of one key: `[start, end)` where `end` is the last record's
/// time plus one millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// First record's event time.
    pub start: i64,
    /// Last record's event time + 1.
    pub end: i64,
}

/// The sessions (of one key's open sessions, sorted by start) a record at
/// `ts` merges with, and the session that results: every session whose
/// span is within `gap_ms` of `ts` merges into one.
pub fn merge_sessions(open: &[Session], ts: i64, gap_ms: u64) -> (Vec<usize>, Session) {
    let gap = i64::try_from(gap_ms).unwrap_or(i64::MAX);
    let mut merged = Session {
        start: ts,
        end: ts + 1,
    };
    let mut indexes = Vec::new();
    for (i, session) in open.iter().enumerate() {
        // Touching: the record lies within `gap` of the session's records.
        let last = session.end - 1;
        if ts >= session.start.saturating_sub(gap) && ts <= last.saturating_add(gap) {
            indexes.push(i);
            merged.start = merged.start.min(session.start);
            merged.end = merged.end.max(session.end);
        }
    }
    (indexes, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_align_to_the_epoch_also_before_it() {
        let w = Window::Tumbling {
            size_ms: 60_000,
            grace_ms: 0,
        };
        assert_eq!(w.assign(61_000), vec![(60_000, 120_000)]);
        assert_eq!(w.assign(60_000), vec![(60_000, 120_000)]);
        assert_eq!(w.assign(59_999), vec![(0, 60_000)]);
        assert_eq!(w.assign(-1), vec![(-60_000, 0)]);
    }

    #[test]
    fn hopping_windows_hold_a_record_size_over_advance_times() {
        let w = Window::Hopping {
            size_ms: 300,
            advance_ms: 100,
            grace_ms: 0,
        };
        assert_eq!(w.assign(250), vec![(0, 300), (100, 400), (200, 500)]);
        assert_eq!(w.assign(300), vec![(100, 400), (200, 500), (300, 600)]);
    }

    #[test]
    fn windows_close_at_end_plus_grace() {
        let w = Window::Tumbling {
            size_ms: 100,
            grace_ms: 50,
        };
        assert!(!w.is_closed(100, 149));
        assert!(w.is_closed(100, 150));
    }

    #[test]
    fn sessions_close_a_gap_and_a_grace_after_their_last_record() {
        let w = Window::Session {
            gap_ms: 10,
            grace_ms: 5,
        };
        // Last record at 100 (end 101): open until stream time 115.
        assert!(!w.is_closed(101, 114));
        assert!(w.is_closed(101, 115));
    }

    #[test]
    fn a_record_between_two_sessions_merges_them() {
        let open = [Session { start: 0, end: 11 }, Session { start: 30, end: 41 }];
        let (merged, session) = merge_sessions(&open, 20, 10);
        assert_eq!(merged, vec![0, 1]);
        assert_eq!(session, Session { start: 0, end: 41 });
        let (merged, session) = merge_sessions(&open, 60, 10);
        assert!(merged.is_empty());
        assert_eq!(session, Session { start: 60, end: 61 });
    }
}
