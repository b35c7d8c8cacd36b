//! `handoff bench …`: load generators that print figures. Loopback only, bounded in count and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::admin::init_tenant;
use crate::app::Application;
use crate::auth::crypto::MasterKey;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::storage::testing::TestDb;

/// Options of `handoff bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestBenchArgs {
    /// PostgreSQL server to run on (a fresh database is created and dropped); empty = a temporary SQLite file.
    #[arg(long, default_value = "")]
    pub database_url: String,
    /// Concurrent connections, each sending one event at a time.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Events to send in all.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Stop after this many seconds even if not all events were sent.
    #[arg(long, default_value_t = 30)]
    pub max_seconds: u64,
    /// Active rules in the workspace: one matches every event, the others listen to the same event but
    /// their conditions never hold (so each is evaluated).
    #[arg(long, default_value_t = 0)]
    pub rules: usize,
}

/// Stores a connection and `n` rules (one matching) directly, as the API would after its checks.
async fn seed_rules(
    store: &dyn crate::storage::Store,
    master: &MasterKey,
    creds: &crate::admin::TenantCredentials,
    n: usize,
) -> anyhow::Result<()> {
    use crate::domain::{Connection, ConnectionId, Rule, RuleId};
    if n == 0 {
        return Ok(());
    }
    let now = crate::domain::now();
    let id = ConnectionId::new_v7();
    let connection = Connection {
        id,
        organization_id: creds.organization_id,
        workspace_id: creds.workspace_id,
        integration_type: "activecampaign".into(),
        name: "Bench".into(),
        api_url: "http://127.0.0.1:9/bench".into(),
        api_key_ciphertext: master.seal(&crate::http::connections::api_key_context(id), b"bench"),
        rate_limit_per_second: None,
        hidden: false,
        active: true,
        inactive_reason: None,
        created_by: "machine_key".into(),
        created_at: now,
        updated_at: now,
    };
    store.create_connection(&connection).await?;
    for i in 0..n {
        let conditions = if i == 0 {
            serde_json::json!([{"path": "payload.sequence_step", "op": "gte", "value": 1}])
        } else {
            serde_json::json!([{"path": "payload.sequence_step", "op": "eq", "value": 1000 + i}])
        };
        store
            .create_rule(&Rule {
                id: RuleId::new_v7(),
                organization_id: creds.organization_id,
                workspace_id: creds.workspace_id,
                connection_id: id,
                integration_type: "activecampaign".into(),
                event: "page.completed".into(),
                resource: Some("onboarding_sequence".into()),
                resource_id: None,
                metadata: serde_json::json!({"action": "add_tag", "tag": "onboarding-step-{{payload.sequence_step}}-done"}),
                conditions,
                active: true,
                hidden: false,
                created_by: "machine_key".into(),
                created_at: now,
                updated_at: now,
            })
            .await?;
    }
    Ok(())
}

/// What one load run measured.
#[derive(Debug)]
pub struct LoadFigures {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl std::fmt::Display for LoadFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        write!(
            f,
            "sent {} (ok {}, errors {}) in {:.2} s = {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.sent,
            self.ok,
            self.errors,
            secs,
            self.ok as f64 / secs,
            ms(0.5),
            ms(0.99),
            self.latency_us.max() as f64 / 1000.0
        )
    }
}

/// Runs `connections` closed loops, each sending one request at a time, until `total` requests were
/// sent or `max` elapsed. `make` builds request number `i`; a 2xx counts as ok.
pub async fn closed_loop<F>(connections: usize, total: u64, max: Duration, make: F) -> LoadFigures
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
    ));
    let started = Instant::now();
    let deadline = started + max;
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (make, next, ok, errors, hist) = (
            make.clone(),
            next.clone(),
            ok.clone(),
            errors.clone(),
            hist.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let result = make(i).send().await;
                let took = t.elapsed().as_micros() as u64;
                match result {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                        let _ = local.record(took.max(1));
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist.lock().await.add(&local).expect("same bounds");
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let latency_us = Arc::try_unwrap(hist).expect("tasks done").into_inner();
    LoadFigures {
        sent: ok + errors,
        ok,
        errors,
        elapsed,
        latency_us,
    }
}

/// Starts Handoff in-process on a fresh database and drives single-event POSTs at it.
pub async fn ingest(args: IngestBenchArgs) -> anyhow::Result<()> {
    let db = if args.database_url.is_empty() {
        TestDb::sqlite().await
    } else {
        TestDb::postgres_on(&args.database_url).await
    };
    let backend = db.store.backend();
    let config = Config::load_from(
        None,
        [
            ("HANDOFF__SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("HANDOFF__DATABASE__URL".to_owned(), db.url.clone()),
            (
                "HANDOFF__INGEST__RATE_LIMIT_PER_SECOND".to_owned(),
                "0".to_owned(),
            ),
        ],
    )?;
    let (master, _) = MasterKey::generate();
    let creds = init_tenant(&*db.store, &master, "Bench", "Bench").await?;
    seed_rules(&*db.store, &master, &creds, args.rules).await?;
    let app = Application::build(&config, db.store.clone(), master).await?;
    let url = format!("http://{}/api/v1/events", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .context("building the HTTP client")?;
    let key = creds.publishable_key.clone();
    let make = move |i: u64| {
        let body = serde_json::json!({
            "event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
            "payload": {"user_id": format!("usr_{i}"), "email": format!("user{i}@northstar.io"),
                        "page_id": "page_connect-crm", "page_title": "Connect your CRM",
                        "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z"}});
        client
            .post(&url)
            .header("X-Meshes-Publishable-Key", &key)
            .json(&body)
    };
    // Warm up connections and caches before measuring.
    let _ = closed_loop(
        args.connections,
        args.connections as u64 * 4,
        Duration::from_secs(10),
        make.clone(),
    )
    .await;
    let figures = closed_loop(
        args.connections,
        args.requests,
        Duration::from_secs(args.max_seconds),
        make,
    )
    .await;
    println!(
        "ingest  backend={backend:<8} rules={:<3} connections={} {figures}",
        args.rules, args.connections
    );
    shutdown.trigger();
    server.await??;
    drop(db);
    Ok(())
}
