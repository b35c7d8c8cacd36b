//! Delivery: the retry policy, the per-account rate limiter, and (next) the worker pool that claims due
//! rule events, performs them and records every attempt.

pub mod pool;
pub mod ratelimit;
pub mod retry;
pub mod test_event;
