//! Per-key ingest rate limit: a token bucket per credential holding one second of events.
//! Per node: a generous abuse guard, not an exact quota (the destination limiter is the exact one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Limits events per second per key. `per_second == 0` disables it.
pub struct KeyRateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl KeyRateLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` events' worth for `key`, or says how many whole seconds to wait.
    pub fn check(&self, key: &str, n: u32) -> Result<(), u64> {
        self.check_at(key, n, Instant::now())
    }

    fn check_at(&self, key: &str, n: u32, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let n = f64::from(n);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle keys so the map cannot grow without bound.
            buckets.retain(|_, b| now.duration_since(b.updated).as_secs() < 60);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.per_second,
            updated: now,
        });
        let elapsed = now.duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.per_second.max(n));
        b.updated = now;
        if b.tokens >= n {
            b.tokens -= n;
            Ok(())
        } else {
            Err(((n - b.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_gets_its_rate_then_waits() {
        let l = KeyRateLimiter::new(10);
        let t = Instant::now();
        for _ in 0..10 {
            assert!(l.check_at("a", 1, t).is_ok());
        }
        assert_eq!(l.check_at("a", 1, t), Err(1));
        assert!(l.check_at("b", 1, t).is_ok(), "keys are independent");
        assert!(l.check_at("a", 1, t + Duration::from_millis(150)).is_ok());
    }

    #[test]
    fn a_bulk_call_counts_each_event_and_zero_disables() {
        let l = KeyRateLimiter::new(100);
        let t = Instant::now();
        assert!(l.check_at("a", 100, t).is_ok());
        assert!(l.check_at("a", 50, t).is_err());
        let off = KeyRateLimiter::new(0);
        for _ in 0..1000 {
            assert!(off.check_at("a", 100, t).is_ok());
        }
    }
}
