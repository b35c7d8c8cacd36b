//! A small closed-loop HTTP load driver for benchmarks against services on this machine.
//!
//! `concurrency` workers share one `reqwest::Client`; each runs one operation at a time (closed
//! loop: the next starts when the previous answered) until the request budget or the time cap is
//! spent. Latencies go into an HDR histogram per worker, merged at the end. The target must be a
//! loopback address: this is for measuring our own services, never for loading someone else's.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use url::Url;

/// How much load to drive, and where.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Base URL of the service under test (loopback only).
    pub target: Url,
    /// Operations in flight at once (= connections, with one pooled connection per worker).
    pub concurrency: usize,
    /// Stop after this many operations in total (`None`: only the time cap applies).
    pub max_requests: Option<u64>,
    /// Stop starting operations after this long.
    pub max_duration: Duration,
    /// Give up on one operation after this long (counted as an error).
    pub request_timeout: Duration,
}

impl LoadPlan {
    /// `concurrency` workers against `target`, capped at 30 s.
    pub fn new(target: Url, concurrency: usize) -> Self {
        Self {
            target,
            concurrency,
            max_requests: None,
            max_duration: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Caps the total number of operations.
    pub fn requests(mut self, n: u64) -> Self {
        self.max_requests = Some(n);
        self
    }

    /// Caps the run time.
    pub fn duration(mut self, d: Duration) -> Self {
        self.max_duration = d;
        self
    }
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("load runs only against loopback addresses, not {0}")]
    NotLoopback(String),
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What one operation gets to work with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The shared client.
    pub client: reqwest::Client,
    /// The plan's target.
    pub base: Arc<Url>,
    /// Which worker runs it (0-based).
    pub worker: usize,
    /// The operation's number across all workers (0-based).
    pub seq: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Operations completed (answered or failed).
    pub requests: u64,
    /// Operations that failed without a status (connection errors, timeouts).
    pub errors: u64,
    /// Answered operations by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// `requests / elapsed`.
    pub throughput_per_s: f64,
    /// Latency of answered operations, in milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(
            f,
            "requests      {} in {:.2} s = {:.0} req/s ({} errors)",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.throughput_per_s,
            self.errors
        )?;
        writeln!(f, "statuses      {}", statuses.join(", "))?;
        write!(
            f,
            "latency (ms)  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Runs `op` (one request; `Ok(status)` or `Err`) under `plan`.
pub async fn run<F, Fut, E>(plan: &LoadPlan, op: F) -> Result<LoadReport, LoadError>
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u16, E>> + Send + 'static,
{
    run_with_state(
        plan,
        |_| (),
        move |ctx, ()| {
            let fut = op(ctx);
            async move { ((), fut.await) }
        },
    )
    .await
}

/// Runs `op` under `plan`, threading a per-worker state through a worker's operations (for
/// sequences such as "create, then use what was created"). `init` makes a worker's first state
/// and a fresh one after an operation timed out.
pub async fn run_with_state<S, I, F, Fut, E>(
    plan: &LoadPlan,
    init: I,
    op: F,
) -> Result<LoadReport, LoadError>
where
    S: Send + 'static,
    I: Fn(usize) -> S + Send + Sync + 'static,
    F: Fn(Ctx, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<u16, E>)> + Send + 'static,
{
    ensure_loopback(&plan.target)?;
    if plan.concurrency == 0 {
        return Err(LoadError::NoConcurrency);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(plan.request_timeout)
        .build()?;
    let shared = Arc::new(Shared {
        init,
        op,
        next: AtomicU64::new(0),
        max_requests: plan.max_requests.unwrap_or(u64::MAX),
        request_timeout: plan.request_timeout,
        client,
        base: Arc::new(plan.target.clone()),
    });

    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..plan.concurrency {
        let shared = Arc::clone(&shared);
        workers.spawn(async move { shared.work(worker, deadline).await });
    }
    let mut total = Tally::new();
    while let Some(tally) = workers.join_next().await {
        // A worker only panics if `op` does; that is a bug in the benchmark, not load to measure.
        total.merge(tally.expect("load worker panicked"));
    }
    Ok(total.report(started.elapsed()))
}

/// Refuses targets that are not this machine.
pub fn ensure_loopback(url: &Url) -> Result<(), LoadError> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(LoadError::NotLoopback(url.to_string()))
    }
}

struct Shared<I, F> {
    init: I,
    op: F,
    next: AtomicU64,
    max_requests: u64,
    request_timeout: Duration,
    client: reqwest::Client,
    base: Arc<Url>,
}

impl<I, F> Shared<I, F> {
    async fn work<S, Fut, E>(&self, worker: usize, deadline: Instant) -> Tally
    where
        I: Fn(usize) -> S,
        F: Fn(Ctx, S) -> Fut,
        Fut: Future<Output = (S, Result<u16, E>)>,
    {
        let mut tally = Tally::new();
        let mut state = Some((self.init)(worker));
        while Instant::now() < deadline {
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            if seq >= self.max_requests {
                break;
            }
            let ctx = Ctx {
                client: self.client.clone(),
                base: Arc::clone(&self.base),
                worker,
                seq,
            };
            let s = state.take().unwrap_or_else(|| (self.init)(worker));
            let started = Instant::now();
            // The client's own timeout covers each request; this covers an operation that
            // chains several.
            let outcome = tokio::time::timeout(self.request_timeout * 2, (self.op)(ctx, s)).await;
            let took = started.elapsed();
            match outcome {
                Ok((s, Ok(status))) => {
                    state = Some(s);
                    tally.answered(status, took);
                }
                Ok((s, Err(_))) => {
                    state = Some(s);
                    tally.errors += 1;
                }
                Err(_) => tally.errors += 1,
            }
        }
        tally
    }
}

/// One worker's counts.
struct Tally {
    answered: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            answered: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            // 1 µs to 1 h at 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn answered(&mut self, status: u16, took: Duration) {
        self.answered += 1;
        *self.statuses.entry(status).or_default() += 1;
        self.latency_us
            .saturating_record(took.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    fn merge(&mut self, other: Tally) {
        self.answered += other.answered;
        self.errors += other.errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with equal bounds merge");
    }

    fn report(self, elapsed: Duration) -> LoadReport {
        let requests = self.answered + self.errors;
        let ms = |us: u64| us as f64 / 1000.0;
        let h = &self.latency_us;
        let q = |quantile: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(quantile))
            }
        };
        LoadReport {
            requests,
            errors: self.errors,
            throughput_per_s: requests as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            elapsed,
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            statuses: self.statuses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_allowed() {
        for ok in [
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://[::1]:80/",
            "http://127.9.9.9/",
        ] {
            assert!(ensure_loopback(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/",
            "https://example.com/",
            "http://[2001:db8::1]/",
        ] {
            assert!(ensure_loopback(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_run_stops_at_the_request_budget_and_counts_statuses_and_errors() {
        let plan = LoadPlan::new(Url::parse("http://127.0.0.1:1/").unwrap(), 4).requests(100);
        let report = run(&plan, |ctx| async move {
            if ctx.seq % 10 == 0 {
                Err("boom")
            } else {
                Ok(200 + (ctx.seq % 2) as u16)
            }
        })
        .await
        .unwrap();
        assert_eq!(report.requests, 100);
        assert_eq!(report.errors, 10);
        assert_eq!(report.statuses.values().sum::<u64>(), 90);
        assert!(report.to_string().contains("requests      100"));
    }

    #[tokio::test]
    async fn state_is_threaded_through_a_workers_operations() {
        let plan = LoadPlan::new(Url::parse("http://127.0.0.1:1/").unwrap(), 1).requests(5);
        let report = run_with_state(
            &plan,
            |_| 0u16,
            |_, n| async move { (n + 1, Ok::<_, ()>(200 + n)) },
        )
        .await
        .unwrap();
        assert_eq!(
            report.statuses.keys().copied().collect::<Vec<_>>(),
            [200, 201, 202, 203, 204]
        );
    }
}
