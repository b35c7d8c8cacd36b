//! `handoff bench history`: what support's reads and levers cost on a large history. Stores a
//! backlog of events (one delivery each, a share of them failed through the real claim and finish
//! path), then times each read over HTTP against an in-process API, interleaved round by round so
//! every kind sees the same machine, and times replays of 10,000 failures.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::admin::init_tenant;
use crate::app::Application;
use crate::auth::crypto::MasterKey;
use crate::config::Config;
use crate::domain::{
    AttemptId, AttemptRecord, Disposition, EventId, NewEvent, NewRuleEvent, OutcomeCode,
    RuleEventId,
};
use crate::shutdown::Shutdown;
use crate::storage::testing::TestDb;

/// Options of `handoff bench history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryBenchArgs {
    /// PostgreSQL server to run on (a fresh database is created and dropped); empty = a temporary SQLite file.
    #[arg(long, default_value = "")]
    pub database_url: String,
    /// Events in the history, one delivery each.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Distinct contacts (emails) the events are spread over.
    #[arg(long, default_value_t = 2_000)]
    pub contacts: usize,
    /// Of the events, how many have a failed delivery (the rest stay pending: no worker runs).
    #[arg(long, default_value_t = 20_000)]
    pub failed: usize,
    /// Requests per read kind.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
}

const BATCH: usize = 1_000;

/// One kind of read and the path it requests for sample `i`.
struct Read {
    name: &'static str,
    path: Box<dyn Fn(usize) -> String>,
    times: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: HistoryBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events >= 1 && args.contacts >= 1,
        "--events and --contacts must be at least 1"
    );
    let failed = args.failed.min(args.events);
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
        ],
    )?;
    let (master, _) = MasterKey::generate();
    let creds = init_tenant(&*db.store, &master, "Bench", "Bench").await?;
    let rule = super::seed_rules(&*db.store, &master, &creds, 1)
        .await?
        .remove(0);
    let (org, ws) = (creds.organization_id, creds.workspace_id);

    // The backlog, oldest first, through the same batched insert ingest uses.
    let started = Instant::now();
    let base = crate::domain::now() - chrono::TimeDelta::milliseconds(args.events as i64);
    let mut ids: Vec<(EventId, RuleEventId)> = Vec::with_capacity(args.events);
    for chunk in (0..args.events).collect::<Vec<_>>().chunks(BATCH) {
        let batch: Vec<NewEvent> = chunk
            .iter()
            .map(|&i| {
                let email = format!("user{}@northstar.io", i % args.contacts);
                NewEvent {
                    id: EventId::new_v7(),
                    organization_id: org,
                    workspace_id: ws,
                    event: "page.completed".into(),
                    resource: "onboarding_sequence".into(),
                    resource_id: Some("workspace-setup".into()),
                    payload: serde_json::json!({"email": email, "sequence_step": 3, "page_id": "page_connect-crm"}),
                    contact_email: Some(email),
                    created_by: "publishable_key".into(),
                    created_at: base + chrono::TimeDelta::milliseconds(i as i64),
                    status: crate::domain::DeliveryStatus::Pending,
                    rule_events: vec![NewRuleEvent {
                        id: RuleEventId::new_v7(),
                        rule_id: rule.id,
                        connection_id: rule.connection_id,
                        integration_type: "activecampaign".into(),
                    }],
                    idempotency: None,
                }
            })
            .collect();
        ids.extend(batch.iter().map(|e| (e.id, e.rule_events[0].id)));
        db.store.insert_events(&batch).await?;
    }
    let stored = started.elapsed();

    // Fail the oldest `failed` deliveries through claim and finish, as a worker would.
    let started = Instant::now();
    let mut done = 0;
    while done < failed {
        let at = crate::domain::now();
        let take = BATCH.min(failed - done) as i64;
        let claims = db
            .store
            .claim_due("bench", at, at + chrono::TimeDelta::minutes(5), take, take)
            .await?;
        anyhow::ensure!(!claims.is_empty(), "the claim found nothing to fail");
        let items: Vec<_> = claims
            .iter()
            .map(|c| {
                let attempt = AttemptRecord {
                    id: AttemptId::new_v7(),
                    organization_id: c.organization_id,
                    workspace_id: c.workspace_id,
                    event_id: c.event_id,
                    rule_event_id: c.rule_event_id,
                    attempt_number: 1,
                    started_at: at,
                    duration_ms: 12,
                    outcome_code: OutcomeCode::RejectedClientError,
                    http_status: Some(422),
                    error: Some("ActiveCampaign rejected the request (422)".into()),
                    calls: Vec::new(),
                    is_test: false,
                };
                (attempt, Disposition::Failed)
            })
            .collect();
        done += claims.len();
        db.store.finish_attempts(&items, "bench", at).await?;
    }
    let failing = started.elapsed();
    if backend == "postgres" {
        // A production database has statistics (autovacuum analyzes a table after it grows);
        // one loaded a moment ago has none, and PostgreSQL then plans the workspace list as a
        // bitmap AND of two indexes plus a sort.
        let pool = sqlx::PgPool::connect(&db.url).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    println!(
        "history  backend={backend} events={} contacts={} failed={failed}: stored in {:.1} s, failed in {:.1} s",
        args.events,
        args.contacts,
        stored.as_secs_f64(),
        failing.as_secs_f64()
    );

    let app = Application::build(&config, db.store.clone(), master)
        .await?
        .without_workers();
    let base_url = format!("http://{}", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    let (user, pass) = (
        creds.access_key.clone(),
        creds.secret_key.expose_secret().to_owned(),
    );
    let get = |path: String| {
        let request = client
            .get(format!("{base_url}{path}"))
            .basic_auth(&user, Some(&pass));
        async move {
            let resp = request.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok::<_, anyhow::Error>(body)
        }
    };

    let n = ids.len();
    let pick = move |i: usize| (i.wrapping_mul(7919)) % n;
    let deep = crate::http::pagination::encode_cursor(ids[n.saturating_sub(1).min(100)].0.0);
    let mid = crate::http::pagination::encode_cursor(ids[n / 2].0.0);
    let contacts = args.contacts;
    let event_ids: Vec<_> = ids.iter().map(|(e, _)| e.0).collect();
    let rule_event_ids: Vec<_> = ids.iter().map(|(_, r)| r.0).collect();
    let (e1, e2, r2) = (event_ids.clone(), event_ids, rule_event_ids);
    let mut reads = vec![
        Read {
            name: "GET /events/{id}",
            path: Box::new(move |i| format!("/api/v1/events/{}", e1[pick(i)])),
            times: Vec::new(),
        },
        Read {
            name: "GET .../rules/{id}/attempts",
            path: Box::new(move |i| {
                format!(
                    "/api/v1/events/{}/rules/{}/attempts",
                    e2[pick(i)],
                    r2[pick(i)]
                )
            }),
            times: Vec::new(),
        },
        Read {
            name: "GET /workspaces/{id}/events (newest 50)",
            path: Box::new(move |_| format!("/api/v1/workspaces/{ws}/events")),
            times: Vec::new(),
        },
        Read {
            name: "GET /workspaces/{id}/events (page at the middle)",
            path: Box::new(move |_| format!("/api/v1/workspaces/{ws}/events?cursor={mid}")),
            times: Vec::new(),
        },
        Read {
            name: "GET /workspaces/{id}/events (page at the oldest end)",
            path: Box::new(move |_| format!("/api/v1/workspaces/{ws}/events?cursor={deep}")),
            times: Vec::new(),
        },
        Read {
            name: "GET /workspaces/{id}/events?email=",
            path: Box::new(move |i| {
                format!(
                    "/api/v1/workspaces/{ws}/events?email=user{}@northstar.io",
                    i % contacts
                )
            }),
            times: Vec::new(),
        },
        Read {
            name: "GET /events?email= (organization)",
            path: Box::new(move |i| {
                format!("/api/v1/events?email=user{}@northstar.io", i % contacts)
            }),
            times: Vec::new(),
        },
        Read {
            name: "GET /events?status=failed",
            path: Box::new(|_| "/api/v1/events?status=failed".to_owned()),
            times: Vec::new(),
        },
        Read {
            name: "GET /metrics",
            path: Box::new(|_| "/metrics".to_owned()),
            times: Vec::new(),
        },
    ];
    // Warm-up, then rounds: every kind once per round, so noise falls on all alike.
    for read in &reads {
        get((read.path)(0)).await?;
    }
    let mut sample_bytes = vec![0usize; reads.len()];
    for i in 0..args.samples {
        for (k, read) in reads.iter_mut().enumerate() {
            let path = (read.path)(i);
            let t = Instant::now();
            let body = get(path).await?;
            read.times.push(t.elapsed());
            sample_bytes[k] = body.len();
        }
    }
    let reference = {
        let mut t = reads[0].times.clone();
        t.sort();
        percentile(&t, 0.5)
    };
    println!(
        "{:<52} {:>9} {:>9} {:>9} {:>12}",
        "read", "p50 ms", "p99 ms", "bytes", "p50 ÷ first"
    );
    for (read, bytes) in reads.iter_mut().zip(&sample_bytes) {
        read.times.sort();
        let p50 = percentile(&read.times, 0.5);
        println!(
            "{:<52} {:>9.2} {:>9.2} {:>9} {:>12.2}",
            read.name,
            ms(p50),
            ms(percentile(&read.times, 0.99)),
            bytes,
            p50.as_secs_f64() / reference.as_secs_f64().max(1e-9)
        );
    }

    // Ingest beside a replay: one client sends events one at a time, first alone, then while the
    // replays below run; the replay must not stall ingest (on SQLite both need the one writer).
    let ingest = {
        let client = client.clone();
        let url = format!("{base_url}/api/v1/events");
        let key = creds.publishable_key.clone();
        move |stop: Option<tokio::sync::watch::Receiver<bool>>| {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            async move {
                let mut times = Vec::new();
                // Bounded: 300 requests alone; beside the replay, until it ends (at most 20,000).
                let max = if stop.is_some() { 20_000 } else { 300 };
                for i in 0..max {
                    if stop.as_ref().is_some_and(|s| *s.borrow()) {
                        break;
                    }
                    let body = serde_json::json!({"event": "page.completed", "resource": "onboarding_sequence",
                        "payload": {"email": format!("beside{i}@northstar.io"), "sequence_step": 3}});
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("X-Meshes-Publishable-Key", &key)
                        .json(&body)
                        .send()
                        .await?;
                    anyhow::ensure!(
                        resp.status().as_u16() == 201,
                        "ingest answered {}",
                        resp.status()
                    );
                    times.push(t.elapsed());
                }
                times.sort();
                Ok::<_, anyhow::Error>(times)
            }
        }
    };
    let alone = ingest(None).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let beside = tokio::spawn(ingest(Some(stop_rx)));

    // Replays of the failures, 10,000 per call, as support would page through an outage.
    let mut replayed = 0u64;
    loop {
        let t = Instant::now();
        let resp = client
            .post(format!("{base_url}/api/v1/workspaces/{ws}/replay"))
            .basic_auth(&user, Some(&pass))
            .json(&serde_json::json!({"status": "failed", "since": "2000-01-01T00:00:00Z"}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "replay answered {}",
            resp.status()
        );
        let answer: Value = resp.json().await?;
        let elapsed = t.elapsed();
        let count = answer["count"].as_u64().unwrap_or(0);
        if count == 0 {
            break;
        }
        replayed += count;
        println!(
            "replay   {count} rule events in {:.0} ms ({:.0}/s), has_more={}",
            ms(elapsed),
            count as f64 / elapsed.as_secs_f64(),
            answer["has_more"]
        );
        if answer["has_more"] != Value::Bool(true) {
            break;
        }
    }
    println!("replay   {replayed} requeued in all");
    let _ = stop_tx.send(true);
    let beside = beside.await??;
    for (what, times) in [("alone", &alone), ("during the replays", &beside)] {
        println!(
            "ingest   {what}: {} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            times.len(),
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.99)),
            ms(times.last().copied().unwrap_or_default())
        );
    }
    shutdown.trigger();
    server.await??;
    drop(db);
    Ok(())
}
