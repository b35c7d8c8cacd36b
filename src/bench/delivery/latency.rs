//! The latency phase: `handoff serve` in-process (API and workers) on a fresh database, the sandbox
//! with its default per-account limit, events sent open-loop at a steady rate; end to end is the
//! sandbox's arrival time of the event's `POST /contactTags` minus the instant its `201` came back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::procfs::CpuSnapshot;
use super::{
    DeliveryBenchArgs, EVENT, Quantiles, RESOURCE, Route, contact_of, email_in, email_of, fresh_db,
    seed_routes, tenant, verdict, wait_until,
};
use crate::app::Application;
use crate::config::Config;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use crate::shutdown::Shutdown;

/// The target: p99 end to end on PostgreSQL.
const TARGET_P99_MS: f64 = 15.0;

/// Maps this process's monotonic instants to wall-clock times the way the sandbox does (anchored
/// once), so a `201` instant and a sandbox `at` compare without wall-clock slew between them.
#[derive(Clone, Copy)]
struct Anchor {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Anchor {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        self.wall
            + chrono::Duration::from_std(at.saturating_duration_since(self.instant))
                .unwrap_or_default()
    }
}

/// One sent event: which account it went to and what the API answered when.
struct Sent {
    account: usize,
    email: String,
    /// Status and the instant the status line arrived; `None` on a transport error.
    answer: Option<(u16, Instant)>,
    /// Send → status line.
    took: Duration,
}

/// The ingest endpoint and what a sender needs.
struct Target {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl Target {
    async fn send(&self, account: usize, email: String) -> Sent {
        let body = serde_json::json!({
            "event": EVENT, "resource": RESOURCE, "resource_id": super::account_name(account),
            "payload": {"email": email, "first_name": "Bench", "step": 1}});
        let started = Instant::now();
        let answer = match self
            .client
            .post(&self.url)
            .header("X-Meshes-Publishable-Key", &self.key)
            .json(&body)
            .send()
            .await
        {
            Ok(resp) => {
                let at = Instant::now();
                let status = resp.status().as_u16();
                // Read the body so the connection goes back to the pool.
                let _ = resp.bytes().await;
                Some((status, at))
            }
            Err(_) => None,
        };
        Sent {
            account,
            email,
            took: answer.map_or(started.elapsed(), |(_, at)| at - started),
            answer,
        }
    }
}

/// Successful `POST /contactTags` calls logged across accounts.
fn tagged(sandbox: &SandboxHandle, routes: &[Route]) -> usize {
    routes
        .iter()
        .map(|r| {
            sandbox
                .request_log(&r.account.name)
                .iter()
                .filter(|e| e.path == "/api/3/contactTags" && e.status == Some(201))
                .count()
        })
        .sum()
}

/// Runs the phase and prints its block.
pub async fn run(args: &DeliveryBenchArgs) -> anyhow::Result<()> {
    let load = super::procfs::load_average().unwrap_or(f64::NAN);
    let db = fresh_db(args).await;
    let backend = db.store.backend();
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .context("starting the sandbox")?;
    let anchor = Anchor::now();
    let (master, _, creds) = tenant(&*db.store).await?;
    let routes = seed_routes(&*db.store, &master, &creds, &sandbox, args.accounts, None).await?;

    let mut env = vec![
        ("HANDOFF__SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("HANDOFF__DATABASE__URL".to_owned(), db.url.clone()),
        (
            "HANDOFF__INGEST__RATE_LIMIT_PER_SECOND".to_owned(),
            "0".to_owned(),
        ),
    ];
    env.extend(args.delivery_env());
    let config = Config::load_from(None, env)?;
    let app = Application::build(&config, db.store.clone(), master).await?;
    let url = format!("http://{}/api/v1/events", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(10))
            .build()?,
        url,
        key: creds.publishable_key.clone(),
    });

    // Warm-up: one delivery per account, so the tag ids are cached and connections are pooled.
    let mut warm = JoinSet::new();
    for (i, _) in routes.iter().enumerate() {
        let target = target.clone();
        warm.spawn(async move { target.send(i, email_of("warm", i as u64)).await });
    }
    while let Some(sent) = warm.join_next().await {
        let sent = sent?;
        anyhow::ensure!(
            matches!(sent.answer, Some((201, _))),
            "warm-up event for account {} was not accepted",
            sent.account
        );
    }
    let warmed = wait_until(Duration::from_secs(30), || {
        tagged(&sandbox, &routes) >= routes.len()
    })
    .await;
    anyhow::ensure!(
        warmed,
        "the warm-up deliveries did not all arrive within 30 s"
    );
    // Let every sliding one-second window (the sandbox's and the worker's limiter) empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in &routes {
        sandbox.clear_request_log(&r.account.name);
    }

    // Open loop: a ticker starts each send on its own task, whatever the previous ones are doing.
    let total = u64::from(args.rate) * args.seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = JoinSet::new();
    let started = Instant::now();
    let database = super::procfs::database_of(&db.url);
    let cpu_before = CpuSnapshot::take(std::process::id(), &database);
    for n in 0..total {
        ticker.tick().await;
        let target = target.clone();
        let account = (n % routes.len() as u64) as usize;
        sends.spawn(async move { target.send(account, email_of("e", n)).await });
    }
    let send_span = started.elapsed();
    let cpu = cpu_before.spent_until(&CpuSnapshot::take(std::process::id(), &database));
    let mut sent = Vec::with_capacity(total as usize);
    while let Some(s) = sends.join_next().await {
        sent.push(s?);
    }
    let accepted = sent
        .iter()
        .filter(|s| matches!(s.answer, Some((201, _))))
        .count();
    let all_arrived = wait_until(Duration::from_secs(args.grace_seconds), || {
        tagged(&sandbox, &routes) >= accepted
    })
    .await;

    let figures = measure(&sandbox, &routes, &sent, anchor);
    shutdown.trigger();
    server.await??;
    sandbox.shutdown().await;
    drop(db);

    let other = sent
        .iter()
        .filter(|s| matches!(s.answer, Some((st, _)) if st != 201))
        .count();
    let errors = sent.iter().filter(|s| s.answer.is_none()).count();
    let ingest = Quantiles::of_micros(
        sent.iter()
            .filter(|s| s.answer.is_some())
            .map(|s| s.took.as_micros() as i64)
            .collect(),
    );
    println!(
        "== delivery latency  backend={backend} accounts={} rate={}/s seconds={} (sandbox limit 5 req/s per account, on; load avg {load:.2} at start)",
        args.accounts, args.rate, args.seconds
    );
    println!(
        "events          {total} sent in {:.2} s = {:.1}/s; {accepted} answered 201, {other} other, {errors} transport errors",
        send_span.as_secs_f64(),
        total as f64 / send_span.as_secs_f64().max(f64::EPSILON)
    );
    println!("ingest 201 (ms) {ingest}");
    println!(
        "end to end (ms) {}   (201 → POST /contactTags at the sandbox)",
        figures.e2e
    );
    println!(
        "  201 → sync    {}   (queue, claim, first call)",
        figures.to_sync
    );
    println!(
        "  sync → tag    {}   (sync answered, limiter, second call)",
        figures.sync_to_tag
    );
    println!(
        "not delivered   {} within {} s of the last send{}; {} delivered before their 201 arrived",
        figures.undelivered,
        args.grace_seconds,
        if all_arrived { "" } else { " (wait timed out)" },
        figures.before_201
    );
    println!(
        "sandbox         {} calls, {} throttled (429/503)",
        figures.calls, figures.throttled
    );
    // `worker` is this process here: the app, its workers, the sandbox and the sender.
    let others = (cpu.busy - cpu.worker - cpu.postgres).max(0.0);
    let postgres = if backend == "postgres" {
        format!(", postgres backends of this database {:.2}", cpu.postgres)
    } else {
        String::new()
    };
    println!(
        "cpu (s)         this process {:.2}{postgres}, everything else {:.2}; machine busy {:.0}% while sending",
        cpu.worker,
        others,
        100.0 * cpu.busy / cpu.total.max(f64::EPSILON)
    );
    println!(
        "target          p99 ≤ {TARGET_P99_MS} ms end to end: {} (p99 {:.2} ms)",
        verdict(figures.e2e.n > 0 && figures.e2e.p99 <= TARGET_P99_MS && figures.undelivered == 0),
        figures.e2e.p99
    );
    Ok(())
}

/// What the sandbox's logs say about the measured events.
struct Figures {
    e2e: Quantiles,
    to_sync: Quantiles,
    sync_to_tag: Quantiles,
    undelivered: usize,
    before_201: usize,
    calls: usize,
    throttled: usize,
}

/// Joins each accepted event to its first successful sync and contactTags call in its account's log.
fn measure(sandbox: &SandboxHandle, routes: &[Route], sent: &[Sent], anchor: Anchor) -> Figures {
    let mut syncs: Vec<HashMap<String, DateTime<Utc>>> = Vec::with_capacity(routes.len());
    let mut tags: Vec<HashMap<String, DateTime<Utc>>> = Vec::with_capacity(routes.len());
    let (mut calls, mut throttled) = (0, 0);
    for r in routes {
        let name = &r.account.name;
        let by_id: HashMap<u64, String> = sandbox
            .state(name)
            .contacts
            .into_iter()
            .map(|c| (c.id, c.email.to_ascii_lowercase()))
            .collect();
        let (mut s, mut t) = (HashMap::new(), HashMap::new());
        // Ordered by `at`: the first successful call per contact wins.
        for e in sandbox.request_log(name) {
            calls += 1;
            if matches!(e.status, Some(429 | 503)) {
                throttled += 1;
            }
            if !matches!(e.status, Some(200 | 201)) {
                continue;
            }
            if e.path == "/api/3/contact/sync" {
                if let Some(email) = email_in(e.body.as_ref()) {
                    s.entry(email).or_insert(e.at);
                }
            } else if e.path == "/api/3/contactTags"
                && let Some(email) = contact_of(e.body.as_ref()).and_then(|id| by_id.get(&id))
            {
                t.entry(email.clone()).or_insert(e.at);
            }
        }
        syncs.push(s);
        tags.push(t);
    }
    let micros = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX);
    let (mut e2e, mut to_sync, mut sync_to_tag) = (Vec::new(), Vec::new(), Vec::new());
    let (mut undelivered, mut before_201) = (0, 0);
    for s in sent {
        let Some((201, at)) = s.answer else { continue };
        let answered = anchor.wall(at);
        let Some(tagged) = tags[s.account].get(&s.email) else {
            undelivered += 1;
            continue;
        };
        let d = micros(*tagged - answered);
        if d < 0 {
            before_201 += 1;
        }
        e2e.push(d.max(0));
        if let Some(synced) = syncs[s.account].get(&s.email) {
            to_sync.push(micros(*synced - answered).max(0));
            sync_to_tag.push(micros(*tagged - *synced).max(0));
        }
    }
    Figures {
        e2e: Quantiles::of_micros(e2e),
        to_sync: Quantiles::of_micros(to_sync),
        sync_to_tag: Quantiles::of_micros(sync_to_tag),
        undelivered,
        before_201,
        calls,
        throttled,
    }
}
