//! The per-account rate limiter: a true sliding one-second window over accepted requests.
//!
//! ActiveCampaign allows N requests per second per account with no documented burst. A token bucket
//! refilling at N/s lets up to 2N through in some one-second window, which would make the sandbox more
//! lenient than the service it stands in for; this limiter keeps the instants of the last N accepted
//! requests and refuses a request while the oldest of them is less than one second old, so no window
//! of one second, wherever it starts, ever holds more than N accepted requests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The length of the window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accepted; `remaining` more would be accepted right now.
    Accepted { remaining: u32 },
    /// Refused; a slot frees in `retry_after` (whole seconds, at least 1).
    Refused { retry_after: u64 },
    /// The account has no rate limit.
    Unlimited,
}

/// A ring of the instants of the last `limit` accepted requests.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u32,
    accepted: VecDeque<Instant>,
}

impl SlidingWindow {
    /// A limiter letting `limit` requests through per second; 0 turns limiting off.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            accepted: VecDeque::with_capacity(limit as usize),
        }
    }

    /// The configured limit (0 = off).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Changes the limit, forgetting the history (as a fresh account would).
    pub fn set_limit(&mut self, limit: u32) {
        *self = Self::new(limit);
    }

    /// Forgets every accepted request.
    pub fn clear(&mut self) {
        self.accepted.clear();
    }

    /// Decides a request arriving at `now` and, when accepted, counts it.
    ///
    /// `now` must not go backwards between calls; callers read the clock while holding the lock
    /// that guards this limiter, so concurrent requests are ordered.
    pub fn try_acquire(&mut self, now: Instant) -> Decision {
        if self.limit == 0 {
            return Decision::Unlimited;
        }
        self.expire(now);
        if self.accepted.len() >= self.limit as usize {
            let frees_at = self.accepted[0] + WINDOW;
            return Decision::Refused {
                retry_after: whole_seconds_at_least_one(frees_at - now),
            };
        }
        self.accepted.push_back(now);
        Decision::Accepted {
            remaining: self.limit - self.accepted.len() as u32,
        }
    }

    /// How many requests would be accepted at `now`, without counting one (`None` when unlimited).
    pub fn remaining(&mut self, now: Instant) -> Option<u32> {
        if self.limit == 0 {
            return None;
        }
        self.expire(now);
        Some(self.limit - self.accepted.len() as u32)
    }

    /// Drops the accepted instants that have left the window ending at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&oldest) = self.accepted.front() {
            if now.saturating_duration_since(oldest) >= WINDOW {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Rounds up to whole seconds, never below one (`Retry-After: 0` invites a hot loop).
fn whole_seconds_at_least_one(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn accepts_the_limit_then_refuses_until_the_oldest_leaves_the_window() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(5);
        for i in 0..5 {
            assert_eq!(
                w.try_acquire(ms(t0, i * 10)),
                Decision::Accepted {
                    remaining: 4 - i as u32
                }
            );
        }
        assert_eq!(
            w.try_acquire(ms(t0, 500)),
            Decision::Refused { retry_after: 1 }
        );
        assert_eq!(
            w.try_acquire(ms(t0, 999)),
            Decision::Refused { retry_after: 1 }
        );
        // The first accept (t0) leaves the window at exactly t0 + 1 s.
        assert_eq!(
            w.try_acquire(ms(t0, 1000)),
            Decision::Accepted { remaining: 0 }
        );
        assert_eq!(
            w.try_acquire(ms(t0, 1005)),
            Decision::Refused { retry_after: 1 }
        );
        assert_eq!(
            w.try_acquire(ms(t0, 1010)),
            Decision::Accepted { remaining: 0 }
        );
    }

    #[test]
    fn never_passes_more_than_the_limit_in_any_one_second_window_unlike_a_token_bucket() {
        // A request every 50 ms for 5 s: a 5-token bucket refilling at 5/s would pass 9–10 in the
        // first second; the sliding window must pass at most 5 in every window.
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(5);
        let accepted: Vec<Instant> = (0..100)
            .map(|i| ms(t0, i * 50))
            .filter(|&t| matches!(w.try_acquire(t), Decision::Accepted { .. }))
            .collect();
        for (i, &start) in accepted.iter().enumerate() {
            let in_window = accepted[i..]
                .iter()
                .take_while(|&&t| t - start < WINDOW)
                .count();
            assert!(in_window <= 5, "{in_window} accepted within one second");
        }
        assert_eq!(accepted.len(), 25, "5 per second over 5 s");
    }

    #[test]
    fn a_limit_of_zero_is_off() {
        let mut w = SlidingWindow::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(w.try_acquire(t0), Decision::Unlimited);
        }
        assert_eq!(w.remaining(t0), None);
    }

    #[test]
    fn remaining_does_not_count_a_request() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(2);
        assert_eq!(w.remaining(t0), Some(2));
        w.try_acquire(t0);
        assert_eq!(w.remaining(t0), Some(1));
        assert_eq!(w.remaining(ms(t0, 1000)), Some(2));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds_at_least_one(Duration::ZERO), 1);
        assert_eq!(whole_seconds_at_least_one(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_at_least_one(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds_at_least_one(Duration::from_secs(3)), 3);
    }
}
