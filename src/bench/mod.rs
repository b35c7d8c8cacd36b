//! `handoff bench …`: load generators that print figures. Loopback only, bounded in count and time.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::init_tenant;
use crate::app::Application;
use crate::auth::crypto::MasterKey;
use crate::config::Config;
use crate::loadgen::{LoadPlan, run};
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

/// Stores a connection and `n` rules (one matching) directly, as the API would after its checks;
/// returns the rules, the matching one first.
async fn seed_rules(
    store: &dyn crate::storage::Store,
    master: &MasterKey,
    creds: &crate::admin::TenantCredentials,
    n: usize,
) -> anyhow::Result<Vec<crate::domain::Rule>> {
    use crate::domain::{Connection, ConnectionId, Rule, RuleId};
    let mut rules = Vec::with_capacity(n);
    if n == 0 {
        return Ok(rules);
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
        let rule = Rule {
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
        };
        store.create_rule(&rule).await?;
        rules.push(rule);
    }
    Ok(rules)
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
    // Ingest alone: no delivery workers competing for the two cores (the seeded connection points
    // nowhere, so they would only retry).
    let app = Application::build(&config, db.store.clone(), master)
        .await?
        .without_workers();
    let url = format!("http://{}/api/v1/events", app.local_addr());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let key = Arc::new(creds.publishable_key.clone());
    let target = url::Url::parse(&url)?;
    let send = move |ctx: crate::loadgen::Ctx| {
        let key = key.clone();
        async move {
            let i = ctx.seq;
            let body = serde_json::json!({
                "event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
                "payload": {"user_id": format!("usr_{i}"), "email": format!("user{i}@northstar.io"),
                            "page_id": "page_connect-crm", "page_title": "Connect your CRM",
                            "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z"}});
            let resp = ctx
                .client
                .post(ctx.base.as_str())
                .header("X-Meshes-Publishable-Key", key.as_str())
                .json(&body)
                .send()
                .await?;
            let status = resp.status().as_u16();
            let _ = resp.bytes().await;
            Ok::<u16, reqwest::Error>(status)
        }
    };
    // Warm up connections and caches before measuring.
    let warm =
        LoadPlan::new(target.clone(), args.connections).requests(args.connections as u64 * 4);
    run(&warm, send.clone()).await?;
    let plan = LoadPlan::new(target, args.connections)
        .requests(args.requests)
        .duration(Duration::from_secs(args.max_seconds));
    let report = run(&plan, send).await?;
    println!(
        "ingest  backend={backend} rules={} connections={}\n{report}",
        args.rules, args.connections
    );
    shutdown.trigger();
    server.await??;
    drop(db);
    Ok(())
}

pub mod delivery;
pub mod history;
