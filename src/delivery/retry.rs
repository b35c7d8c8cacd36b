//! The retry policy: the schedule with jitter, bounded `Retry-After`, and the one place that turns an
//! attempt's outcome into what happens next (`Disposition`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Disposition, OutcomeCode};

/// How an attempt ended, as the destination classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// 429, or a 503 carrying `Retry-After` (older accounts throttle that way). Never spends the budget.
    Throttled { retry_after: Option<u64> },
    /// 5xx, timeouts, resets: retry with backoff (honouring a bounded `Retry-After` when sent).
    Transient {
        code: OutcomeCode,
        retry_after: Option<u64>,
    },
    /// 401/403: the connection's key is wrong; park until it is fixed.
    AuthFailed,
    /// Other 4xx, template (mapping) errors: fail at once.
    Permanent { code: OutcomeCode },
    /// The rule or the connection no longer exists.
    Gone,
}

/// Retry timing. The defaults are DESIGN.md's: 5 s, 30 s, 2 min, 10 min, 30 min, 2 h, 6 h, 12 h, 24 h, ±20 %.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    /// Fraction of each delay added or removed at random (0.2 = ±20 %).
    pub jitter: f64,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// The wait after a throttle answer without `Retry-After`.
    pub default_throttle_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |mins: u64| Duration::from_secs(mins * 60);
        Self {
            schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                m(2),
                m(10),
                m(30),
                m(120),
                m(360),
                m(720),
                m(1440),
            ],
            jitter: 0.2,
            max_retry_after: Duration::from_secs(3600),
            default_throttle_wait: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `n` (1-based), jittered by `unit` ∈ [0, 1): ±`jitter`.
    /// `None` when the budget is spent.
    pub fn backoff(&self, n: usize, unit: f64) -> Option<Duration> {
        let base = self.schedule.get(n.checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }

    /// `Retry-After` bounded to `[1 s, max_retry_after]`, or the default.
    pub fn throttle_wait(&self, retry_after: Option<u64>) -> Duration {
        retry_after
            .map(|s| Duration::from_secs(s.max(1)).min(self.max_retry_after))
            .unwrap_or(self.default_throttle_wait)
    }

    /// What to do after an attempt. `budgeted_failures` counts the failed attempts that spend the
    /// budget, this one included (throttled attempts excluded); `unit` is a uniform random draw.
    pub fn decide(
        &self,
        outcome: &Outcome,
        budgeted_failures: usize,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Disposition {
        let at =
            |d: Duration| now + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
        match outcome {
            Outcome::Delivered => Disposition::Completed,
            Outcome::Throttled { retry_after } => Disposition::RetryAt {
                at: at(self.throttle_wait(*retry_after)),
                throttled: true,
            },
            Outcome::Transient { retry_after, .. } => match self.backoff(budgeted_failures, unit) {
                Some(delay) => {
                    let floor = retry_after
                        .map(|s| self.throttle_wait(Some(s)))
                        .unwrap_or_default();
                    Disposition::RetryAt {
                        at: at(delay.max(floor)),
                        throttled: false,
                    }
                }
                None => Disposition::Failed,
            },
            Outcome::AuthFailed => Disposition::Parked,
            Outcome::Permanent { .. } => Disposition::Failed,
            Outcome::Gone => Disposition::Canceled,
        }
    }
}

/// A uniform draw in [0, 1) for jitter, from the system CSPRNG (cheap enough at delivery rates).
pub fn random_unit() -> f64 {
    let bytes = crate::auth::crypto::random_bytes(8);
    let n = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-21T15:06:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_schedule_is_followed_then_the_delivery_fails() {
        let p = RetryPolicy::default();
        let expected = [5, 30, 120, 600, 1800, 7200, 21600, 43200, 86400];
        let transient = Outcome::Transient {
            code: OutcomeCode::RejectedServerError,
            retry_after: None,
        };
        for (i, secs) in expected.iter().enumerate() {
            // unit 0.5 means no jitter.
            let d = p.decide(&transient, i + 1, t0(), 0.5);
            assert_eq!(
                d,
                Disposition::RetryAt {
                    at: t0() + chrono::TimeDelta::seconds(*secs),
                    throttled: false
                },
                "retry {}",
                i + 1
            );
        }
        assert_eq!(p.decide(&transient, 10, t0(), 0.5), Disposition::Failed);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(p.backoff(1, 1.0), Some(Duration::from_secs(6)));
        for _ in 0..1000 {
            let d = p.backoff(2, random_unit()).unwrap().as_secs_f64();
            assert!((24.0..=36.0).contains(&d), "{d}");
        }
        let spread: std::collections::BTreeSet<u64> = (0..200)
            .map(|_| p.backoff(9, random_unit()).unwrap().as_secs())
            .collect();
        assert!(spread.len() > 50, "jitter spreads retries out");
    }

    #[test]
    fn throttling_waits_retry_after_within_bounds_and_never_spends_the_budget() {
        let p = RetryPolicy::default();
        let d = p.decide(
            &Outcome::Throttled {
                retry_after: Some(30),
            },
            99,
            t0(),
            0.5,
        );
        assert_eq!(
            d,
            Disposition::RetryAt {
                at: t0() + chrono::TimeDelta::seconds(30),
                throttled: true
            }
        );
        let d = p.decide(
            &Outcome::Throttled {
                retry_after: Some(999_999),
            },
            1,
            t0(),
            0.5,
        );
        assert_eq!(
            d,
            Disposition::RetryAt {
                at: t0() + chrono::TimeDelta::seconds(3600),
                throttled: true
            }
        );
        let d = p.decide(&Outcome::Throttled { retry_after: None }, 1, t0(), 0.5);
        assert_eq!(
            d,
            Disposition::RetryAt {
                at: t0() + chrono::TimeDelta::seconds(1),
                throttled: true
            }
        );
        let d = p.decide(
            &Outcome::Throttled {
                retry_after: Some(0),
            },
            1,
            t0(),
            0.5,
        );
        assert_eq!(
            d,
            Disposition::RetryAt {
                at: t0() + chrono::TimeDelta::seconds(1),
                throttled: true
            }
        );
    }

    #[test]
    fn a_server_error_with_retry_after_waits_at_least_that_long() {
        let p = RetryPolicy::default();
        let o = Outcome::Transient {
            code: OutcomeCode::RejectedServerError,
            retry_after: Some(120),
        };
        assert_eq!(
            p.decide(&o, 1, t0(), 0.5),
            Disposition::RetryAt {
                at: t0() + chrono::TimeDelta::seconds(120),
                throttled: false
            }
        );
    }

    #[test]
    fn auth_failures_park_permanent_errors_fail_and_gone_cancels() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(&Outcome::AuthFailed, 1, t0(), 0.5),
            Disposition::Parked
        );
        assert_eq!(
            p.decide(
                &Outcome::Permanent {
                    code: OutcomeCode::RejectedClientError
                },
                1,
                t0(),
                0.5
            ),
            Disposition::Failed
        );
        assert_eq!(
            p.decide(
                &Outcome::Permanent {
                    code: OutcomeCode::MappingError
                },
                1,
                t0(),
                0.5
            ),
            Disposition::Failed
        );
        assert_eq!(
            p.decide(&Outcome::Gone, 1, t0(), 0.5),
            Disposition::Canceled
        );
        assert_eq!(
            p.decide(&Outcome::Delivered, 1, t0(), 0.5),
            Disposition::Completed
        );
    }
}
