//! Retry policy as data: how many tries a queue gives a job, how long it waits between them and
//! how long one attempt may run (DESIGN.md §3, retry table).
//!
//! Delays are a pure function of the attempt number and a random draw, so tests assert on the
//! due times a retry is scheduled for instead of sleeping.

use std::time::Duration;

use rand::Rng;

use super::QueueName;

/// How the delay before the next attempt grows.
#[derive(Clone, Debug, PartialEq)]
pub enum Backoff {
    /// `min(cap, base * 2^(n-1))`, then "full jitter": a uniform draw in `[0, that]`.
    Exponential { base: Duration, cap: Duration },
    /// A fixed table (the last entry repeats), each delay varied by ±`jitter` (a fraction).
    Schedule { delays: Vec<Duration>, jitter: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (Laravel's `--tries`).
    pub tries: u32,
    pub backoff: Backoff,
    /// How long one attempt may run; also the lease after which a silent consumer's job is
    /// reclaimed (heartbeats keep live jobs from being reclaimed).
    pub timeout: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl RetryPolicy {
    /// The DESIGN table: inbound channels, deliveries, outbound webhooks.
    pub fn for_queue(queue: &str) -> Self {
        match queue {
            "deliveries" => Self {
                tries: 5,
                backoff: Backoff::Schedule {
                    delays: [10, 30, 60, 120, 300].map(secs).to_vec(),
                    jitter: 0.1,
                },
                timeout: secs(30),
            },
            "webhooks" => Self {
                tries: 4,
                backoff: Backoff::Schedule {
                    delays: [60, 300, 900].map(secs).to_vec(),
                    jitter: 0.1,
                },
                timeout: secs(30),
            },
            _ => Self {
                tries: 3,
                backoff: Backoff::Exponential {
                    base: secs(1),
                    cap: secs(60),
                },
                timeout: secs(120),
            },
        }
    }

    /// The delay before attempt `failed_attempt + 1`, drawing jitter from `rng`.
    pub fn delay_after(&self, failed_attempt: u32, rng: &mut impl Rng) -> Duration {
        let n = failed_attempt.max(1);
        match &self.backoff {
            Backoff::Exponential { base, cap } => {
                let ceiling = base
                    .saturating_mul(2u32.saturating_pow(n - 1))
                    .min(*cap)
                    .as_millis() as u64;
                Duration::from_millis(rng.random_range(0..=ceiling))
            }
            Backoff::Schedule { delays, jitter } => {
                let Some(last) = delays.last() else {
                    return Duration::ZERO;
                };
                let nominal = delays.get(n as usize - 1).unwrap_or(last).as_secs_f64();
                let factor = 1.0 + rng.random_range(-jitter..=*jitter);
                Duration::from_secs_f64((nominal * factor).max(0.0))
            }
        }
    }

    /// The bounds `delay_after` stays within, for tests and for documentation.
    pub fn delay_bounds(&self, failed_attempt: u32) -> (Duration, Duration) {
        let n = failed_attempt.max(1);
        match &self.backoff {
            Backoff::Exponential { base, cap } => (
                Duration::ZERO,
                base.saturating_mul(2u32.saturating_pow(n - 1)).min(*cap),
            ),
            Backoff::Schedule { delays, jitter } => {
                let nominal = delays
                    .get(n as usize - 1)
                    .or(delays.last())
                    .copied()
                    .unwrap_or_default()
                    .as_secs_f64();
                (
                    Duration::from_secs_f64(nominal * (1.0 - jitter)),
                    Duration::from_secs_f64(nominal * (1.0 + jitter)),
                )
            }
        }
    }
}

impl QueueName {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy::for_queue(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn check(queue: &str, tries: u32, timeout: u64, bounds: &[(f64, f64)]) {
        let policy = RetryPolicy::for_queue(queue);
        assert_eq!(policy.tries, tries, "{queue}");
        assert_eq!(policy.timeout, secs(timeout), "{queue}");
        let mut rng = StdRng::seed_from_u64(7);
        for (i, (low, high)) in bounds.iter().enumerate() {
            let attempt = i as u32 + 1;
            let (lo, hi) = policy.delay_bounds(attempt);
            assert_eq!(
                (lo.as_secs_f64(), hi.as_secs_f64()),
                (*low, *high),
                "{queue} #{attempt}"
            );
            for _ in 0..200 {
                let d = policy.delay_after(attempt, &mut rng);
                assert!(d >= lo && d <= hi, "{queue} #{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn inbound_channels_back_off_exponentially_with_full_jitter_capped_at_a_minute() {
        let expected = [
            (0.0, 1.0),
            (0.0, 2.0),
            (0.0, 4.0),
            (0.0, 8.0),
            (0.0, 16.0),
            (0.0, 32.0),
            (0.0, 60.0),
            (0.0, 60.0),
        ];
        for q in ["whatsapp-messages", "facebook", "email", "widget"] {
            check(q, 3, 120, &expected);
        }
    }

    #[test]
    fn deliveries_follow_their_table_with_ten_percent_jitter() {
        check(
            "deliveries",
            5,
            30,
            &[
                (9.0, 11.0),
                (27.0, 33.0),
                (54.0, 66.0),
                (108.0, 132.0),
                (270.0, 330.0),
                (270.0, 330.0),
            ],
        );
    }

    #[test]
    fn webhooks_wait_one_five_and_fifteen_minutes() {
        check(
            "webhooks",
            4,
            30,
            &[(54.0, 66.0), (270.0, 330.0), (810.0, 990.0)],
        );
    }

    #[test]
    fn full_jitter_actually_spreads_retries() {
        let policy = RetryPolicy::for_queue("facebook");
        let mut rng = StdRng::seed_from_u64(1);
        let draws: std::collections::HashSet<_> =
            (0..50).map(|_| policy.delay_after(6, &mut rng)).collect();
        assert!(
            draws.len() > 40,
            "jitter should not collapse to a few values"
        );
    }
}
