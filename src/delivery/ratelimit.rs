//! One limiter per ActiveCampaign account (same `api_url`): never more than the limit in any sliding
//! one-second window, as the account sees it.
//!
//! A token bucket refilling at 5/s can pass 9–10 calls in one second; a sliding window cannot: each
//! account keeps the instants of its recent calls and a call goes out only while fewer than the limit
//! fall inside the window. The window is a little longer than a second (`margin`) so network jitter
//! cannot squeeze six calls into one second at the account's end.
//!
//! Across nodes, each account's limit is divided among the live worker nodes (node `i` of `n` gets
//! `limit / n`, plus one while `i < limit % n`), so the sum never exceeds the limit with no per-call
//! coordination. A share that grows takes effect only after one window, so calls the node made under
//! the old membership have left the window first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Membership {
    nodes: usize,
    index: usize,
}

#[derive(Debug)]
struct State {
    current: Membership,
    /// A membership that gives this node more, effective at the instant.
    pending: Option<(Membership, Instant)>,
    windows: HashMap<String, Window>,
}

/// One account's recent calls, and the lowest limit any of its connections asked for lately
/// (connections sharing an account URL share one limiter; the lowest limit applies).
#[derive(Debug, Default)]
struct Window {
    recent: VecDeque<Instant>,
    floor: Option<(u32, Instant)>,
}

/// How long a lower limit keeps applying after the last call that asked for it.
const FLOOR_MEMORY: Duration = Duration::from_secs(60);

/// Shared by every worker task of a node.
#[derive(Debug)]
pub struct AccountLimiter {
    margin: Duration,
    state: Mutex<State>,
}

/// This node's share of an account's limit.
pub fn share(limit: u32, nodes: usize, index: usize) -> u32 {
    let nodes = nodes.max(1) as u32;
    let index = (index as u32).min(nodes - 1);
    limit / nodes + u32::from(index < limit % nodes)
}

impl AccountLimiter {
    /// A limiter for a single node, with `margin` added to the one-second window.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            state: Mutex::new(State {
                current: Membership { nodes: 1, index: 0 },
                pending: None,
                windows: HashMap::new(),
            }),
        }
    }

    fn window(&self) -> Duration {
        WINDOW + self.margin
    }

    /// Tells the limiter it is node `index` of `nodes` live worker nodes.
    pub fn set_membership(&self, nodes: usize, index: usize, now: Instant) {
        let new = Membership {
            nodes: nodes.max(1),
            index,
        };
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if new == s.current {
            s.pending = None;
            return;
        }
        // Compare with a representative limit: a membership with more nodes, or a later index, never
        // gives more. Fewer nodes, or an earlier index, may give more: delay it by one window.
        let gives_less_or_equal = (1..=1000)
            .all(|l| share(l, new.nodes, new.index) <= share(l, s.current.nodes, s.current.index));
        if gives_less_or_equal {
            s.current = new;
            s.pending = None;
        } else {
            s.pending = Some((new, now + self.window()));
        }
    }

    /// This node's share of `limit` now.
    pub fn local_limit(&self, limit: u32, now: Instant) -> u32 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::promote(&mut s, now);
        share(limit, s.current.nodes, s.current.index)
    }

    fn promote(s: &mut State, now: Instant) {
        if let Some((m, at)) = s.pending
            && now >= at
        {
            s.current = m;
            s.pending = None;
        }
    }

    /// Takes a slot for one call to `account` at `now`, or says how long until one frees.
    /// `Err(None)` means this node has no share of the account at all.
    pub fn try_acquire(
        &self,
        account: &str,
        limit: u32,
        now: Instant,
    ) -> Result<(), Option<Duration>> {
        let window = self.window();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::promote(&mut s, now);
        let membership = s.current;
        let w = s.windows.entry(account.to_owned()).or_default();
        let limit = match w.floor {
            Some((floor, seen)) if floor < limit && now.duration_since(seen) < FLOOR_MEMORY => {
                floor
            }
            _ => {
                w.floor = Some((limit, now));
                limit
            }
        };
        let allowed = share(limit, membership.nodes, membership.index) as usize;
        if allowed == 0 {
            return Err(None);
        }
        let recent = &mut w.recent;
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            recent.pop_front();
        }
        if recent.len() < allowed {
            recent.push_back(now);
            Ok(())
        } else {
            // The slot frees when the call `allowed` positions back leaves the window.
            let oldest = recent[recent.len() - allowed];
            Err(Some(window.saturating_sub(now.duration_since(oldest))))
        }
    }

    /// Waits for a slot; returns how long it waited (zero when a slot was free at once). `None` when
    /// this node has no share of the account.
    pub async fn acquire(&self, account: &str, limit: u32) -> Option<Duration> {
        let started = Instant::now();
        let mut waited = false;
        loop {
            match self.try_acquire(account, limit, Instant::now()) {
                Ok(()) if !waited => return Some(Duration::ZERO),
                Ok(()) => return Some(started.elapsed()),
                Err(None) => return None,
                Err(Some(wait)) => {
                    waited = true;
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await
                }
            }
        }
    }

    /// Forgets accounts with no call in the last window (bounded memory).
    pub fn prune(&self, now: Instant) {
        let window = self.window();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.windows.retain(|_, w| {
            w.recent
                .back()
                .is_some_and(|t| now.duration_since(*t) < window)
                || w.floor
                    .is_some_and(|(_, seen)| now.duration_since(seen) < FLOOR_MEMORY)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest number of instants inside any window of `len`.
    fn max_in_any_window(times: &[Instant], len: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) < len)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn shares_split_a_limit_exactly() {
        for limit in [1u32, 5, 7, 1000] {
            for nodes in 1..=6usize {
                let total: u32 = (0..nodes).map(|i| share(limit, nodes, i)).sum();
                assert_eq!(total, limit, "limit {limit} over {nodes} nodes");
            }
        }
        assert_eq!(share(5, 2, 0), 3);
        assert_eq!(share(5, 2, 1), 2);
        assert_eq!(share(5, 8, 7), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_go_out_in_any_sliding_second() {
        let limiter = std::sync::Arc::new(AccountLimiter::new(Duration::from_millis(50)));
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (limiter, sent) = (limiter.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire("acct", 5).await.unwrap();
                sent.lock().unwrap().push(Instant::now());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = sent.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 40);
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 5);
        // And it is not slower than it must be: 40 calls at 5 per 1.05 s take under 8.5 s.
        assert!(times[39].duration_since(times[0]) < Duration::from_millis(8500));
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_are_limited_independently() {
        let limiter = AccountLimiter::new(Duration::ZERO);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(limiter.try_acquire("a", 5, now).is_ok());
        }
        assert!(limiter.try_acquire("a", 5, now).is_err());
        assert!(limiter.try_acquire("b", 5, now).is_ok());
        assert_eq!(
            limiter.try_acquire("a", 5, now + Duration::from_millis(400)),
            Err(Some(Duration::from_millis(600)))
        );
        assert!(
            limiter
                .try_acquire("a", 5, now + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connections_sharing_an_account_get_the_lowest_limit() {
        let limiter = AccountLimiter::new(Duration::ZERO);
        let now = Instant::now();
        assert!(limiter.try_acquire("a", 2, now).is_ok());
        for _ in 0..3 {
            let _ = limiter.try_acquire("a", 50, now);
        }
        assert!(
            limiter.try_acquire("a", 50, now).is_err(),
            "the 2/s connection's limit holds for the 50/s one"
        );
        assert!(
            limiter
                .try_acquire("a", 50, now + FLOOR_MEMORY + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_larger_share_waits_one_window_and_a_smaller_one_applies_at_once() {
        let limiter = AccountLimiter::new(Duration::ZERO);
        let t = Instant::now();
        limiter.set_membership(2, 1, t);
        assert_eq!(limiter.local_limit(5, t), 2, "smaller share: at once");
        limiter.set_membership(1, 0, t);
        assert_eq!(limiter.local_limit(5, t), 2, "larger share: not yet");
        assert_eq!(limiter.local_limit(5, t + Duration::from_millis(999)), 2);
        assert_eq!(limiter.local_limit(5, t + Duration::from_secs(1)), 5);
        limiter.set_membership(8, 7, t);
        assert_eq!(
            limiter.try_acquire("a", 5, t + Duration::from_secs(2)),
            Err(None)
        );
    }
}
