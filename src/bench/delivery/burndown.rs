//! The burn-down phase: a backlog stored with no worker running, then `handoff worker` started as a
//! separate process (so its memory is Handoff's alone) against the in-process sandbox with its rate
//! limit off; the throughput comes from the events' completion times, the memory from `/proc`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use super::procfs::{self, CpuSnapshot};
use super::{
    DeliveryBenchArgs, EVENT, RESOURCE, Route, email_of, fresh_db, seed_routes, tenant, verdict,
};
use crate::domain::{
    DeliveryStatus, EventId, EventRecord, InsertOutcome, NewEvent, NewRuleEvent, OrganizationId,
    RuleEventId,
};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use crate::storage::Store;

/// The targets on PostgreSQL.
const TARGET_PER_SECOND: f64 = 2000.0;
const TARGET_RSS_MB: f64 = 150.0;
/// Events per `insert_events` transaction while storing the backlog.
const INSERT_BATCH: u64 = 500;
/// Concurrent `get_event` reads while checking the outcome.
const READERS: usize = 16;

/// Runs the phase and prints its block.
pub async fn run(args: &DeliveryBenchArgs) -> anyhow::Result<()> {
    let load = procfs::load_average().unwrap_or(f64::NAN);
    let db = fresh_db(args).await;
    let backend = db.store.backend();
    let sandbox = Sandbox::start(SandboxConfig::unlimited())
        .await
        .context("starting the sandbox")?;
    let (master, master_text, creds) = tenant(&*db.store).await?;
    let routes = seed_routes(
        &*db.store,
        &master,
        &creds,
        &sandbox,
        args.accounts,
        Some(args.connection_rate_limit),
    )
    .await?;

    let stored = Instant::now();
    let ids = store_backlog(&*db.store, &creds, &routes, args.backlog).await?;
    let stored_in = stored.elapsed();

    let mut child = spawn_worker(args, &db.url, &master_text)?;
    let pid = child.id().context("the worker process has no pid")?;
    let spawned = Instant::now();
    let database = procfs::database_of(&db.url);
    let cpu_before = CpuSnapshot::take(pid, &database);
    let watched = watch(args, &db.store, &mut child, pid, creds.organization_id, ids).await;
    let cpu = cpu_before.spent_until(&CpuSnapshot::take(pid, &database));
    let hwm_kb = procfs::status_kb(pid, "VmHWM");
    let wall = spawned.elapsed();
    stop(&mut child, pid).await;
    let watched = watched?;
    let calls = sandbox_calls(&sandbox, &routes);
    sandbox.shutdown().await;
    drop(db);

    let records = &watched.records;
    let mut statuses: BTreeMap<&str, u64> = BTreeMap::new();
    for r in records {
        *statuses.entry(r.status.as_str()).or_default() += 1;
    }
    *statuses.entry("(unfinished)").or_default() += watched.unfinished as u64;
    let completed = records
        .iter()
        .filter(|r| r.status == DeliveryStatus::Completed)
        .count() as u64;
    let first_claim = records.iter().filter_map(|r| r.started_at).min();
    let first_done = records.iter().filter_map(|r| r.completed_at).min();
    let last_done = records.iter().filter_map(|r| r.completed_at).max();
    let per_second = |from: Option<DateTime<Utc>>| match (from, last_done) {
        (Some(a), Some(b)) if b > a => completed as f64 / secs(b - a),
        _ => 0.0,
    };
    let rate_done = per_second(first_done);
    let rate_claim = per_second(first_claim);
    let hwm_mb = hwm_kb.map_or(0.0, |kb| kb as f64 / 1024.0);

    println!(
        "== delivery burn-down  backend={backend} accounts={} backlog={} (sandbox limit off; connections {}/s; load avg {load:.2} at start)",
        args.accounts, args.backlog, args.connection_rate_limit
    );
    println!(
        "worker          separate process `handoff worker`, delivery.concurrency={} batch={} per_connection={} database.max_connections={}",
        opt(args.concurrency),
        opt(args.batch),
        opt(args.per_connection),
        opt(args.db_connections)
    );
    println!(
        "backlog         stored in {:.2} s (insert_events, {INSERT_BATCH} per transaction, no worker running)",
        stored_in.as_secs_f64()
    );
    let statuses: Vec<String> = statuses
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!(
        "outcome         {}{}",
        statuses.join(", "),
        if watched.timed_out {
            format!("  (gave up after {} s)", args.max_seconds)
        } else {
            String::new()
        }
    );
    println!(
        "throughput      {rate_done:.0} deliveries/s first → last completion ({:.2} s); {rate_claim:.0}/s first claim → last completion; wall {:.2} s from spawn",
        match (first_done, last_done) {
            (Some(a), Some(b)) => secs(b - a),
            _ => 0.0,
        },
        wall.as_secs_f64()
    );
    println!(
        "sandbox calls   {} (sync {}, contactTags {}, other {}); {:.2} per delivery",
        calls.total,
        calls.sync,
        calls.contact_tags,
        calls.total - calls.sync - calls.contact_tags,
        calls.total as f64 / completed.max(1) as f64
    );
    println!(
        "memory          worker peak RSS (VmHWM) {hwm_mb:.1} MB; highest sampled VmRSS {:.1} MB",
        watched.max_rss_kb as f64 / 1024.0
    );
    let share = |s: f64| 100.0 * s / cpu.total.max(f64::EPSILON);
    // On SQLite the database works inside the worker process.
    let postgres = if backend == "postgres" {
        format!(
            ", postgres backends of this database {:.2} ({:.0}%)",
            cpu.postgres,
            share(cpu.postgres)
        )
    } else {
        String::new()
    };
    println!(
        "cpu (s)         worker {:.2} ({:.0}%), bench+sandbox {:.2} ({:.0}%){postgres}, machine busy {:.2} of {:.2} ({:.0}%); worker {:.0} µs per delivery",
        cpu.worker,
        share(cpu.worker),
        cpu.bench,
        share(cpu.bench),
        cpu.busy,
        cpu.total,
        share(cpu.busy),
        1e6 * cpu.worker / completed.max(1) as f64
    );
    println!(
        "targets         ≥ {TARGET_PER_SECOND:.0} deliveries/s: {}; RSS ≤ {TARGET_RSS_MB:.0} MB: {}; all completed: {}",
        verdict(rate_done >= TARGET_PER_SECOND),
        verdict(hwm_kb.is_some() && hwm_mb <= TARGET_RSS_MB),
        verdict(completed == args.backlog)
    );
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "default".to_owned(), |v| v.to_string())
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// Stores `n` events, round-robin over the routes, each with one pending rule event; returns their ids.
async fn store_backlog(
    store: &dyn Store,
    creds: &crate::admin::TenantCredentials,
    routes: &[Route],
    n: u64,
) -> anyhow::Result<Vec<EventId>> {
    let mut ids = Vec::with_capacity(n as usize);
    let mut next = 0;
    while next < n {
        let end = (next + INSERT_BATCH).min(n);
        let batch: Vec<NewEvent> = (next..end)
            .map(|i| {
                let route = &routes[(i % routes.len() as u64) as usize];
                let email = email_of("b", i);
                NewEvent {
                    id: EventId::new_v7(),
                    organization_id: creds.organization_id,
                    workspace_id: creds.workspace_id,
                    event: EVENT.into(),
                    resource: RESOURCE.into(),
                    resource_id: Some(route.account.name.clone()),
                    payload: serde_json::json!({"email": email, "first_name": "Bench", "step": 1}),
                    contact_email: Some(email),
                    created_by: "publishable_key".into(),
                    created_at: crate::domain::now(),
                    status: DeliveryStatus::Pending,
                    rule_events: vec![NewRuleEvent {
                        id: RuleEventId::new_v7(),
                        rule_id: route.rule.id,
                        connection_id: route.rule.connection_id,
                        integration_type: route.rule.integration_type.clone(),
                    }],
                    idempotency: None,
                }
            })
            .collect();
        for outcome in store.insert_events(&batch).await? {
            match outcome {
                InsertOutcome::Inserted(e) => ids.push(e.id),
                other => anyhow::bail!("storing the backlog: unexpected outcome {other:?}"),
            }
        }
        next = end;
    }
    Ok(ids)
}

/// Starts `handoff worker` on the same database and master key; killed if dropped.
fn spawn_worker(args: &DeliveryBenchArgs, url: &str, master_key: &str) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the handoff binary")?;
    Command::new(exe)
        .arg("worker")
        // Only what is set here configures the worker (DATABASE_URL and RUST_LOG would override it).
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("HANDOFF_CONFIG")
        .env("HANDOFF__DATABASE__URL", url)
        .env("HANDOFF__SECURITY__MASTER_KEY", master_key)
        .env("HANDOFF__LOG__LEVEL", "warn")
        .envs(args.delivery_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting `handoff worker`")
}

/// Asks the worker to stop (SIGTERM, so it drains and deregisters), then kills it if it lingers.
async fn stop(child: &mut Child, pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// What watching the burn-down found.
struct Watched {
    /// Every event that reached a final status, as stored.
    records: Vec<EventRecord>,
    /// Events still not final when watching stopped.
    unfinished: usize,
    max_rss_kb: u64,
    timed_out: bool,
}

/// Samples the worker's memory until the queue is empty, then reads every event until all are
/// final (re-reading only the unfinished ones), or `--max-seconds` pass.
async fn watch(
    args: &DeliveryBenchArgs,
    store: &Arc<dyn Store>,
    child: &mut Child,
    pid: u32,
    org: OrganizationId,
    mut remaining: Vec<EventId>,
) -> anyhow::Result<Watched> {
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut records = Vec::with_capacity(remaining.len());
    let mut max_rss_kb = 0;
    let mut drained = false;
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tick += 1;
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the worker process exited during the burn-down ({status})");
        }
        max_rss_kb = max_rss_kb.max(procfs::status_kb(pid, "VmRSS").unwrap_or(0));
        if Instant::now() >= deadline {
            break;
        }
        // Reading the queue costs the database a scan; once a second is enough to see it empty.
        if tick % 10 != 0 {
            continue;
        }
        if !drained {
            // Nothing left to claim; only in-flight deliveries remain.
            drained = store.queue_stats(crate::domain::now()).await?.due == 0;
        }
        if drained {
            let (done, left) = read_events(store, org, remaining).await?;
            records.extend(done);
            remaining = left;
            if remaining.is_empty() {
                break;
            }
        }
    }
    Ok(Watched {
        records,
        unfinished: remaining.len(),
        max_rss_kb,
        timed_out: !remaining.is_empty(),
    })
}

/// Reads the events; returns the final ones and the ids of the others.
async fn read_events(
    store: &Arc<dyn Store>,
    org: OrganizationId,
    ids: Vec<EventId>,
) -> anyhow::Result<(Vec<EventRecord>, Vec<EventId>)> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let chunk = ids.len().div_ceil(READERS);
    let mut readers = JoinSet::new();
    for part in ids.chunks(chunk) {
        let (store, part) = (store.clone(), part.to_vec());
        readers.spawn(async move {
            let mut done = Vec::new();
            let mut left = Vec::new();
            for id in part {
                match store.get_event(org, id).await? {
                    Some(r)
                        if matches!(
                            r.status,
                            DeliveryStatus::Completed
                                | DeliveryStatus::Failed
                                | DeliveryStatus::Canceled
                        ) =>
                    {
                        done.push(r)
                    }
                    _ => left.push(id),
                }
            }
            Ok::<_, crate::storage::StorageError>((done, left))
        });
    }
    let (mut done, mut left) = (Vec::new(), Vec::new());
    while let Some(part) = readers.join_next().await {
        let (d, l) = part??;
        done.extend(d);
        left.extend(l);
    }
    Ok((done, left))
}

/// Requests the sandbox logged, by kind, across accounts (each account keeps its last 10,000).
struct Calls {
    total: u64,
    sync: u64,
    contact_tags: u64,
}

fn sandbox_calls(sandbox: &SandboxHandle, routes: &[Route]) -> Calls {
    let mut calls = Calls {
        total: 0,
        sync: 0,
        contact_tags: 0,
    };
    for r in routes {
        for e in sandbox.request_log(&r.account.name) {
            calls.total += 1;
            match e.path.as_str() {
                "/api/3/contact/sync" => calls.sync += 1,
                "/api/3/contactTags" => calls.contact_tags += 1,
                _ => {}
            }
        }
    }
    calls
}
