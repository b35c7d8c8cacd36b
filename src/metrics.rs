//! Prometheus metrics of one application instance: counters and fixed-bucket histograms on atomics,
//! labelled families over closed label sets, and the text exposition renderer behind `GET /metrics`.
//!
//! Every instance owns its `Metrics` (no process globals), so tests running many apps in one process
//! each see their own numbers. Recording is a few relaxed atomic adds: no lock, no allocation. Every
//! label value comes from a fixed list (`Label::ALL`), so the series count is bounded and known up
//! front; nothing is ever labelled by a tenant, connection or event id.

use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::OutcomeCode;
use crate::storage::QueueStats;

mod labels;
pub use labels::{Endpoint, IngestResult, Integration, Status};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A monotonically increasing total of time, kept in nanoseconds and shown in seconds.
#[derive(Debug, Default)]
pub struct SecondsCounter(AtomicU64);

impl SecondsCounter {
    pub fn add(&self, d: Duration) {
        self.0.fetch_add(nanos(d), Ordering::Relaxed);
    }

    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e9
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A histogram of durations over fixed upper bounds (seconds, ascending). Buckets are stored
/// per bucket and made cumulative when rendered; `_count` is the sum of the buckets read, so it
/// always equals the `+Inf` bucket even while observations race the scrape.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow (`+Inf`) bucket.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // `le` is inclusive: the first bound not below the value.
        let i = self.bounds.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// One label dimension: a closed set of values, each with a dense index.
pub trait Label: Copy + 'static {
    const NAME: &'static str;
    const ALL: &'static [Self];
    fn index(self) -> usize;
    fn value(self) -> &'static str;
}

/// The labels of a family: one dimension, or a pair of them.
pub trait Labels: Copy + 'static {
    const SERIES: usize;
    fn index(self) -> usize;
    /// `name="value",…` of the series at `index`.
    fn render(index: usize, out: &mut String);
}

fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    // Label values here are fixed identifiers; nothing needs escaping.
    let _ = write!(out, "{name}=\"{value}\"");
}

impl<L: Label> Labels for L {
    const SERIES: usize = L::ALL.len();
    fn index(self) -> usize {
        Label::index(self)
    }
    fn render(index: usize, out: &mut String) {
        push_label(out, L::NAME, L::ALL[index].value());
    }
}

impl<A: Label, B: Label> Labels for (A, B) {
    const SERIES: usize = A::ALL.len() * B::ALL.len();
    fn index(self) -> usize {
        self.0.index() * B::ALL.len() + self.1.index()
    }
    fn render(index: usize, out: &mut String) {
        push_label(out, A::NAME, A::ALL[index / B::ALL.len()].value());
        push_label(out, B::NAME, B::ALL[index % B::ALL.len()].value());
    }
}

/// A counter per label combination, every combination allocated up front.
#[derive(Debug)]
pub struct CounterFamily<L: Labels> {
    series: Box<[Counter]>,
    _labels: PhantomData<L>,
}

impl<L: Labels> Default for CounterFamily<L> {
    fn default() -> Self {
        Self {
            series: (0..L::SERIES).map(|_| Counter::default()).collect(),
            _labels: PhantomData,
        }
    }
}

impl<L: Labels> CounterFamily<L> {
    pub fn add(&self, labels: L, n: u64) {
        self.series[labels.index()].add(n);
    }

    pub fn get(&self, labels: L) -> u64 {
        self.series[labels.index()].get()
    }
}

/// Writes the text exposition format, one family at a time.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    pub fn family<L: Labels>(&mut self, name: &str, help: &str, family: &CounterFamily<L>) {
        self.header(name, "counter", help);
        let mut labels = String::new();
        for (i, c) in family.series.iter().enumerate() {
            labels.clear();
            labels.push('{');
            L::render(i, &mut labels);
            let _ = writeln!(self.0, "{name}{labels}}} {}", c.get());
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let mut cumulative = 0u64;
        for (i, bucket) in h.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match h.bounds.get(i) {
                Some(le) => {
                    let _ = writeln!(self.0, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(self.0, "{name}_sum {sum}\n{name}_count {cumulative}");
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// Request latency: 0.5 ms to 5 s (group commit waits a millisecond or two).
const INGEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Event to delivered: 1 ms to 1 h (retries after outages take minutes to hours; longer is `+Inf`).
const DELIVERY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Everything this instance measures.
#[derive(Debug)]
pub struct Metrics {
    pub ingest_events: CounterFamily<IngestResult>,
    pub ingest_requests: CounterFamily<(Endpoint, Status)>,
    pub ingest_duration: Histogram,
    pub delivery_attempts: CounterFamily<(OutcomeCode, Integration)>,
    pub delivery_latency: Histogram,
    pub rate_limit_wait: SecondsCounter,
    pub rate_limit_waits: Counter,
    /// Set while reading queue stats fails, so an outage is logged once, not every scrape.
    queue_stats_failing: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            ingest_events: CounterFamily::default(),
            ingest_requests: CounterFamily::default(),
            ingest_duration: Histogram::new(INGEST_BUCKETS),
            delivery_attempts: CounterFamily::default(),
            delivery_latency: Histogram::new(DELIVERY_BUCKETS),
            rate_limit_wait: SecondsCounter::default(),
            rate_limit_waits: Counter::default(),
            queue_stats_failing: AtomicBool::new(false),
        }
    }

    /// One attempt recorded; `delivered_after` is its event's age when the attempt was recorded as
    /// the delivery's success.
    pub fn attempt_recorded(
        &self,
        outcome: OutcomeCode,
        integration: Integration,
        delivered_after: Option<Duration>,
    ) {
        self.delivery_attempts.add((outcome, integration), 1);
        if let Some(age) = delivered_after {
            self.delivery_latency.observe(age);
        }
    }

    /// A destination call waited `waited` for the per-account rate limiter (zero: it did not wait).
    pub fn rate_limit_waited(&self, waited: Duration) {
        if !waited.is_zero() {
            self.rate_limit_wait.add(waited);
            self.rate_limit_waits.add(1);
        }
    }

    /// Notes whether reading the queue stats worked; true when a failure starts (log it then).
    pub fn queue_stats_failed(&self, failed: bool) -> bool {
        let was = self.queue_stats_failing.swap(failed, Ordering::Relaxed);
        failed && !was
    }

    /// The whole exposition; the queue gauges are left out when `queue` could not be read.
    pub fn render(&self, queue: Option<QueueStats>) -> String {
        let mut out = Exposition::default();
        out.family(
            "handoff_ingest_events_total",
            "Events submitted, by result (bulk counts each item).",
            &self.ingest_events,
        );
        out.family(
            "handoff_ingest_requests_total",
            "Ingest requests, by endpoint and HTTP status.",
            &self.ingest_requests,
        );
        out.histogram(
            "handoff_ingest_request_duration_seconds",
            "Ingest request latency, from routing to the response.",
            &self.ingest_duration,
        );
        if let Some(q) = queue {
            out.gauge(
                "handoff_queue_due",
                "Deliveries a claim would take now (due, or with an expired lease).",
                q.due as f64,
            );
            out.gauge(
                "handoff_queue_oldest_due_age_seconds",
                "How long the oldest due delivery has been due.",
                q.oldest_due_age_seconds,
            );
        }
        out.family(
            "handoff_delivery_attempts_total",
            "Delivery attempts recorded by this node, by outcome and integration.",
            &self.delivery_attempts,
        );
        out.histogram(
            "handoff_delivery_latency_seconds",
            "From an event's creation to its delivery being recorded as delivered.",
            &self.delivery_latency,
        );
        out.counter(
            "handoff_rate_limit_wait_seconds_total",
            "Time destination calls spent waiting on the per-account rate limiter.",
            self.rate_limit_wait.seconds(),
        );
        out.counter(
            "handoff_rate_limit_waits_total",
            "Destination calls that had to wait on the per-account rate limiter.",
            self.rate_limit_waits.get() as f64,
        );
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 0.1];

    fn lines(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let h = Histogram::new(BOUNDS);
        for us in [500, 1_000, 5_000, 10_000, 50_000, 2_000_000] {
            h.observe(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 6);
        let mut out = Exposition::default();
        out.histogram("t_seconds", "Test.", &h);
        let text = out.finish();
        assert_eq!(
            lines(&text, "t_seconds"),
            [
                "t_seconds_bucket{le=\"0.001\"} 2",
                "t_seconds_bucket{le=\"0.01\"} 4",
                "t_seconds_bucket{le=\"0.1\"} 5",
                "t_seconds_bucket{le=\"+Inf\"} 6",
                "t_seconds_sum 2.0665",
                "t_seconds_count 6",
            ]
        );
        assert!(text.starts_with("# HELP t_seconds Test.\n# TYPE t_seconds histogram\n"));
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let mut out = Exposition::default();
        out.histogram("e_seconds", "Empty.", &Histogram::new(BOUNDS));
        let text = out.finish();
        assert!(text.contains("e_seconds_bucket{le=\"+Inf\"} 0\n"), "{text}");
        assert!(
            text.contains("e_seconds_sum 0\ne_seconds_count 0\n"),
            "{text}"
        );
    }

    #[test]
    fn families_render_every_combination_of_their_labels() {
        let f: CounterFamily<(Endpoint, Status)> = CounterFamily::default();
        f.add((Endpoint::Bulk, Status::of(207)), 2);
        f.add((Endpoint::Events, Status::of(599)), 1);
        assert_eq!(f.get((Endpoint::Bulk, Status::of(207))), 2);
        let mut out = Exposition::default();
        out.family("req_total", "Requests.", &f);
        let text = out.finish();
        let series = lines(&text, "req_total");
        assert_eq!(series.len(), 2 * Status::ALL.len());
        assert!(series.contains(&"req_total{endpoint=\"bulk\",status=\"207\"} 2".to_owned()));
        assert!(series.contains(&"req_total{endpoint=\"events\",status=\"other\"} 1".to_owned()));
        assert!(series.contains(&"req_total{endpoint=\"events\",status=\"201\"} 0".to_owned()));
        assert!(text.contains("# TYPE req_total counter\n"));
    }

    #[test]
    fn every_outcome_code_has_its_own_series() {
        let f: CounterFamily<OutcomeCode> = CounterFamily::default();
        for (i, code) in OutcomeCode::ALL.iter().enumerate() {
            f.add(*code, i as u64 + 1);
        }
        for (i, code) in OutcomeCode::ALL.iter().enumerate() {
            assert_eq!(f.get(*code), i as u64 + 1);
        }
    }

    #[test]
    fn the_exposition_parses_and_leaves_out_unreadable_queue_stats() {
        let m = Metrics::new();
        m.rate_limit_wait.add(Duration::from_millis(1500));
        let with = m.render(Some(QueueStats {
            due: 3,
            oldest_due_age_seconds: 1.25,
        }));
        assert!(with.contains("\nhandoff_queue_due 3\n"), "{with}");
        assert!(with.contains("\nhandoff_queue_oldest_due_age_seconds 1.25\n"));
        assert!(with.contains("\nhandoff_rate_limit_wait_seconds_total 1.5\n"));
        for line in with.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("handoff_"), "{line}");
        }
        let without = m.render(None);
        assert!(!without.contains("handoff_queue_due"));
        assert!(without.contains("handoff_delivery_attempts_total{"));
    }

    #[test]
    fn a_queue_stats_outage_is_reported_once() {
        let m = Metrics::new();
        assert!(!m.queue_stats_failed(false));
        assert!(m.queue_stats_failed(true));
        assert!(!m.queue_stats_failed(true));
        assert!(!m.queue_stats_failed(false));
        assert!(m.queue_stats_failed(true));
    }
}
