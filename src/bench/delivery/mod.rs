//! `handoff bench delivery`: end-to-end delivery latency at a steady rate (in-process `handoff serve`
//! against the in-process ActiveCampaign sandbox, rate limit on), and the burn-down of a stored
//! backlog by a separate `handoff worker` process (rate limit off), with that process's peak memory.
//! Loopback only, bounded in count and time.
//!
//! Layout: this file (options, the shared set-up: database, tenant, sandbox accounts, one connection
//! and one `add_tag` rule per account; small statistics); `latency`; `burndown`; `procfs` (reading
//! `/proc` for memory and CPU figures).

mod burndown;
mod latency;
mod procfs;

use std::time::Duration;

use crate::admin::{TenantCredentials, init_tenant};
use crate::auth::crypto::MasterKey;
use crate::domain::{Connection, ConnectionId, Rule, RuleId};
use crate::sandbox::{AccountInfo, AccountOptions, SandboxHandle};
use crate::storage::Store;
use crate::storage::testing::TestDb;

/// Which phases to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// End-to-end latency at a steady event rate, sandbox rate limit on.
    Latency,
    /// Burn-down of a stored backlog by a separate worker process, sandbox rate limit off.
    Burndown,
    /// Both, each on a fresh database.
    All,
}

/// Options of `handoff bench delivery`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryBenchArgs {
    /// PostgreSQL server to run on (a fresh database is created and dropped per phase); empty = a
    /// temporary SQLite file.
    #[arg(long, default_value = "")]
    pub database_url: String,
    /// Which phases to run.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    pub mode: Mode,
    /// Sandbox accounts, each with one connection and one `add_tag` rule selecting it.
    #[arg(long, default_value_t = 200)]
    pub accounts: usize,
    /// Latency phase: events per second, sent open-loop (a ticker), round-robin over the accounts.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Latency phase: how long to send, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Latency phase: seconds after the last send within which every event must be delivered.
    #[arg(long, default_value_t = 10)]
    pub grace_seconds: u64,
    /// Burn-down phase: rule events stored before the worker starts.
    #[arg(long, default_value_t = 50_000)]
    pub backlog: u64,
    /// Burn-down phase: give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Burn-down phase: `rate_limit_per_second` of every connection (the sandbox's limit is off).
    #[arg(long, default_value_t = 1000)]
    pub connection_rate_limit: u32,
    /// Worker `delivery.concurrency` (both phases); the configured default when absent.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Worker `delivery.batch` (both phases); the configured default when absent.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Worker `delivery.per_connection` (both phases); the configured default when absent.
    #[arg(long)]
    pub per_connection: Option<i64>,
    /// Worker `database.max_connections` (both phases); the configured default when absent.
    #[arg(long)]
    pub db_connections: Option<u32>,
}

impl DeliveryBenchArgs {
    /// The delivery settings as `HANDOFF__…` pairs, for the in-process app and the worker process.
    fn delivery_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "HANDOFF__DESTINATIONS__ALLOW_PRIVATE_NETWORKS".to_owned(),
            "true".to_owned(),
        )];
        let mut set = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                env.push((format!("HANDOFF__{key}"), v));
            }
        };
        set(
            "DELIVERY__CONCURRENCY",
            self.concurrency.map(|v| v.to_string()),
        );
        set("DELIVERY__BATCH", self.batch.map(|v| v.to_string()));
        set(
            "DELIVERY__PER_CONNECTION",
            self.per_connection.map(|v| v.to_string()),
        );
        set(
            "DATABASE__MAX_CONNECTIONS",
            self.db_connections.map(|v| v.to_string()),
        );
        env
    }
}

/// Runs the chosen phases and prints one block per phase.
pub async fn run(args: DeliveryBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.accounts > 0, "--accounts must be at least 1");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    if matches!(args.mode, Mode::Latency | Mode::All) {
        latency::run(&args).await?;
    }
    if matches!(args.mode, Mode::Burndown | Mode::All) {
        burndown::run(&args).await?;
    }
    Ok(())
}

/// A fresh database per phase: PostgreSQL on `--database-url`, or a temporary SQLite file.
async fn fresh_db(args: &DeliveryBenchArgs) -> TestDb {
    if args.database_url.is_empty() {
        TestDb::sqlite().await
    } else {
        TestDb::postgres_on(&args.database_url).await
    }
}

/// The tag every rule adds; seeded in every account so the warm path is sync + contactTags.
const TAG: &str = "bench-done";
/// The event every rule listens to.
const EVENT: &str = "page.completed";
const RESOURCE: &str = "bench";

/// The sandbox account (and `resource_id` of the events routed to it) of account index `i`.
fn account_name(i: usize) -> String {
    format!("acct-{i}")
}

/// The email of event `n` of a phase; unique per phase, so each event makes its own contact.
fn email_of(prefix: &str, n: u64) -> String {
    format!("{prefix}{n}@bench.example")
}

/// One account's wiring: the sandbox account and the rule that routes its events.
struct Route {
    account: AccountInfo,
    rule: Rule,
}

/// Creates `n` sandbox accounts (tag pre-seeded) and, per account, a connection and an `add_tag`
/// rule selecting `resource_id = acct-<i>`, stored directly as the API would after its checks.
async fn seed_routes(
    store: &dyn Store,
    master: &MasterKey,
    creds: &TenantCredentials,
    sandbox: &SandboxHandle,
    n: usize,
    rate_limit: Option<u32>,
) -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::with_capacity(n);
    for i in 0..n {
        let account = sandbox.create_account(AccountOptions::named(account_name(i)));
        sandbox.seed_tag(&account.name, TAG);
        let now = crate::domain::now();
        let id = ConnectionId::new_v7();
        let connection = Connection {
            id,
            organization_id: creds.organization_id,
            workspace_id: creds.workspace_id,
            integration_type: "activecampaign".into(),
            name: format!("Bench {}", account.name),
            api_url: account.api_url.clone(),
            api_key_ciphertext: master.seal(
                &crate::http::connections::api_key_context(id),
                account.token.as_bytes(),
            ),
            rate_limit_per_second: rate_limit,
            hidden: false,
            active: true,
            inactive_reason: None,
            created_by: "machine_key".into(),
            created_at: now,
            updated_at: now,
        };
        store.create_connection(&connection).await?;
        let rule = Rule {
            id: RuleId::new_v7(),
            organization_id: creds.organization_id,
            workspace_id: creds.workspace_id,
            connection_id: id,
            integration_type: "activecampaign".into(),
            event: EVENT.into(),
            resource: Some(RESOURCE.into()),
            resource_id: Some(account.name.clone()),
            metadata: serde_json::json!({"action": "add_tag", "tag": TAG}),
            conditions: serde_json::json!([]),
            active: true,
            hidden: false,
            created_by: "machine_key".into(),
            created_at: now,
            updated_at: now,
        };
        store.create_rule(&rule).await?;
        routes.push(Route { account, rule });
    }
    Ok(routes)
}

/// A fresh tenant and master key (with its base64 form, for a worker process).
async fn tenant(store: &dyn Store) -> anyhow::Result<(MasterKey, String, TenantCredentials)> {
    let (master, text) = MasterKey::generate();
    let creds = init_tenant(store, &master, "Bench", "Bench").await?;
    Ok((master, text, creds))
}

/// The contact id a sandbox request body names (`{"contactTag": {"contact": "17", …}}`).
fn contact_of(body: Option<&serde_json::Value>) -> Option<u64> {
    let v = body?.pointer("/contactTag/contact")?;
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// The email a sandbox `contact/sync` body names.
fn email_in(body: Option<&serde_json::Value>) -> Option<String> {
    body?
        .pointer("/contact/email")?
        .as_str()
        .map(str::to_ascii_lowercase)
}

/// Nearest-rank quantiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Quantiles {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Quantiles {
    /// Quantiles of durations given in microseconds.
    fn of_micros(mut sample: Vec<i64>) -> Self {
        if sample.is_empty() {
            return Self::default();
        }
        sample.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
            sample[rank - 1] as f64 / 1000.0
        };
        Self {
            n: sample.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sample[sample.len() - 1] as f64 / 1000.0,
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            self.p50, self.p90, self.p99, self.max, self.n
        )
    }
}

/// `met` or `MISSED`, for the target lines.
fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Sleeps in small steps until `done` holds or `limit` passes; true when it held.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let q = Quantiles::of_micros((1..=100).map(|v| v * 1000).collect());
        assert_eq!(
            (q.n, q.p50, q.p90, q.p99, q.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Quantiles::of_micros(Vec::new()).n, 0);
    }

    #[test]
    fn contact_ids_are_read_as_numbers_or_strings() {
        let s = serde_json::json!({"contactTag": {"contact": "17", "tag": "3"}});
        let n = serde_json::json!({"contactTag": {"contact": 17, "tag": 3}});
        assert_eq!(contact_of(Some(&s)), Some(17));
        assert_eq!(contact_of(Some(&n)), Some(17));
        assert_eq!(contact_of(None), None);
        let sync = serde_json::json!({"contact": {"email": "E1@Bench.Example"}});
        assert_eq!(email_in(Some(&sync)).as_deref(), Some("e1@bench.example"));
    }
}
