//! Exponential backoff with full jitter (AWS's "full jitter": a uniform
//! pause between zero and the doubled ceiling), so many workers retrying a
//! recovering target do not hit it in step. A target's own advice
//! (`Retry-After`) is a lower bound on the pause.

use std::time::{Duration, Instant};

use rand::Rng;
use tributary_api::connector::RetrySpec;

/// The pauses of one write's retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    timeout: Option<Duration>,
    attempt: u32,
    started: Instant,
}

impl Backoff {
    /// Backoff per `spec`, starting now.
    pub fn new(spec: &RetrySpec) -> Self {
        Self {
            initial: Duration::from_millis(u64::from(spec.initial_delay_ms)),
            max: Duration::from_millis(u64::from(spec.max_delay_ms)),
            timeout: spec.timeout_seconds.map(|s| Duration::from_secs(u64::from(s))),
            attempt: 0,
            started: Instant::now(),
        }
    }

    /// Retries so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the next pause: `initial × 2^attempt`, at most `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next pause, or `None` when the retry timeout is spent.
    pub fn next(&mut self, retry_after: Option<Duration>, rng: &mut impl Rng) -> Option<Duration> {
        if self
            .timeout
            .is_some_and(|timeout| self.started.elapsed() >= timeout)
        {
            return None;
        }
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let jittered = ceiling.mul_f64(rng.random::<f64>());
        Some(retry_after.map_or(jittered, |advice| jittered.max(advice.min(self.max))))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn spec(initial_delay_ms: u32, max_delay_ms: u32, timeout_seconds: Option<u32>) -> RetrySpec {
        RetrySpec {
            initial_delay_ms,
            max_delay_ms,
            timeout_seconds,
        }
    }

    #[test]
    fn pauses_double_up_to_the_maximum_with_jitter_below_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(&spec(100, 1000, None));
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let ceiling = backoff.ceiling();
            let pause = backoff.next(None, &mut rng).unwrap();
            assert!(pause <= ceiling, "{pause:?} > {ceiling:?}");
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.attempts(), 6);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_maximum() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(&spec(10, 5000, None));
        let pause = backoff.next(Some(Duration::from_secs(3)), &mut rng).unwrap();
        assert!(pause >= Duration::from_secs(3), "{pause:?}");
        let capped = backoff.next(Some(Duration::from_mins(1)), &mut rng).unwrap();
        assert_eq!(capped, Duration::from_secs(5));
    }

    #[test]
    fn the_timeout_ends_retries() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(&spec(10, 10, Some(1)));
        assert!(backoff.next(None, &mut rng).is_some());
        backoff.started -= Duration::from_secs(2);
        assert!(backoff.next(None, &mut rng).is_none());
    }
}
