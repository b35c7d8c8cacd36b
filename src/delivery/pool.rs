//! The worker pool: claims due rule events in batches under a lease, performs each through its
//! destination (bounded concurrency, the per-account limiter before every call), and records every
//! attempt with its disposition — results are group-committed too. No transaction is open while a
//! destination is called: claim, commit, call, then record.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::auth::crypto::MasterKey;
use crate::delivery::ratelimit::AccountLimiter;
use crate::delivery::retry::{Outcome, RetryPolicy, random_unit};
use crate::destinations::activecampaign::{AcDestination, ActionResult, CallGate};
use crate::domain::{
    AttemptId, AttemptRecord, ClaimedDelivery, ConnectionId, Disposition, OutcomeCode, RuleChange,
};
use crate::metrics::{Integration, Metrics};
use crate::rules::{EventView, parse_metadata};
use crate::shutdown::Shutdown;
use crate::storage::Store;

/// Worker pool settings (config section `[delivery]`).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Deliveries in flight at once on this node.
    pub concurrency: usize,
    /// Most rule events claimed per query.
    pub batch: usize,
    /// Most rule events of one connection per claim, so a slow or throttled connection cannot fill the pool.
    pub per_connection: i64,
    /// How long a claim is leased; longer than the destination timeout times the calls of one attempt.
    pub lease: Duration,
    /// The polling backstop when no wake-up arrives.
    pub poll_interval: Duration,
    /// Heartbeat period; a node silent for `node_ttl` is no longer counted in rate-limit shares.
    pub heartbeat: Duration,
    pub node_ttl: Duration,
    /// The default per-account limit (requests per second) when a connection sets none.
    pub default_rate_limit: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch: 64,
            per_connection: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            heartbeat: Duration::from_secs(1),
            node_ttl: Duration::from_secs(10),
            default_rate_limit: 5,
        }
    }
}

/// What the pool needs from the rest of the node.
pub struct PoolParts {
    pub store: Arc<dyn Store>,
    pub master_key: Arc<MasterKey>,
    pub destination: AcDestination,
    pub limiter: Arc<AccountLimiter>,
    pub policy: RetryPolicy,
    /// Notified when deliveries were committed (same node); the poll interval covers other nodes.
    pub wake: Arc<Notify>,
    /// This node's metrics (attempts, delivery latency, rate-limit waits).
    pub metrics: Arc<Metrics>,
}

/// A finished attempt on its way to be recorded, with what the metrics need once it is.
struct Finished {
    attempt: AttemptRecord,
    disposition: Disposition,
    meta: Meta,
}

/// The connection's integration and the event's creation time.
type Meta = (Integration, chrono::DateTime<chrono::Utc>);

struct Ctx {
    parts: PoolParts,
    config: PoolConfig,
    owner: String,
    in_flight: InFlight,
}

/// Deliveries held on this node per connection, with a cap of about one second of the connection's
/// share of its account's rate limit (a delivery is ~2 calls). At most `cap` run at once (the rest of
/// a claim waits its turn, its lease renewed by the heartbeat), and a connection holding `cap` or more
/// is left out of the next claim, so a rate-limited backlog is never claimed faster than it can be
/// delivered.
#[derive(Default)]
struct InFlight(std::sync::Mutex<std::collections::HashMap<ConnectionId, Held>>);

struct Held {
    count: usize,
    cap: usize,
    slots: Arc<Semaphore>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<ConnectionId, Held>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds one more delivery of `connection`; returns the connection's run slots.
    fn start(&self, connection: ConnectionId, cap: usize) -> Arc<Semaphore> {
        let mut m = self.lock();
        let held = m.entry(connection).or_insert_with(|| Held {
            count: 0,
            cap,
            slots: Arc::new(Semaphore::new(cap)),
        });
        held.count += 1;
        held.slots.clone()
    }

    fn end(&self, connection: ConnectionId) {
        let mut m = self.lock();
        if let Some(held) = m.get_mut(&connection) {
            held.count = held.count.saturating_sub(1);
            if held.count == 0 {
                m.remove(&connection);
            }
        }
    }

    /// Deliveries that run or are ready to run (at most `cap` of each connection).
    fn active(&self) -> usize {
        self.lock().values().map(|h| h.count.min(h.cap)).sum()
    }

    fn full(&self) -> Vec<ConnectionId> {
        self.lock()
            .iter()
            .filter(|(_, h)| h.count >= h.cap)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Runs the pool until `shutdown`; in-flight deliveries finish and are recorded before it returns.
pub async fn run(parts: PoolParts, config: PoolConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let owner = format!("node-{}", uuid::Uuid::now_v7().simple());
    let ctx = Arc::new(Ctx {
        in_flight: InFlight::default(),
        parts,
        config,
        owner,
    });
    tracing::info!(node.id = %ctx.owner, concurrency = ctx.config.concurrency, "delivery workers starting");

    // A node joining others waits until they have seen it (their next heartbeat) and until one rate
    // window has passed, so its share never adds to calls they made under their old, larger shares.
    if membership(&ctx).await? > 1 {
        let settle = ctx.config.heartbeat + Duration::from_millis(1200);
        tracing::info!(
            wait_ms = settle.as_millis() as u64,
            "other worker nodes are live; waiting for rate-limit shares to settle"
        );
        tokio::select! {
            _ = shutdown.wait() => {}
            _ = tokio::time::sleep(settle) => {}
        }
    }
    let heartbeat = tokio::spawn(heartbeat_loop(ctx.clone(), shutdown.clone()));
    // Deliveries committed on other nodes announce themselves (PostgreSQL LISTEN/NOTIFY); the poll
    // interval remains the backstop when a notification is lost.
    let mut announcements = ctx.parts.store.rule_changes().await?;
    let wake = ctx.parts.wake.clone();
    let listener = tokio::spawn(async move {
        while let Some(change) = announcements.recv().await {
            if matches!(change, RuleChange::DeliveriesDue | RuleChange::All) {
                wake.notify_one();
            }
        }
    });
    let (results_tx, results_rx) = mpsc::channel::<Finished>(ctx.config.concurrency * 4);
    let recorder = tokio::spawn(record_loop(ctx.clone(), results_rx));

    let permits = Arc::new(Semaphore::new(ctx.config.concurrency));
    let mut tasks = JoinSet::new();
    while !shutdown.is_triggered() {
        while tasks.try_join_next().is_some() {}
        // Deliveries waiting behind their own connection's cap do not count: they hold no slot.
        let free = ctx
            .config
            .concurrency
            .saturating_sub(ctx.in_flight.active());
        if free == 0 {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tasks.join_next() => {}
            }
            continue;
        }
        let now = crate::domain::now();
        let lease_until =
            now + chrono::TimeDelta::from_std(ctx.config.lease).unwrap_or(chrono::TimeDelta::MAX);
        let limit = free.min(ctx.config.batch) as i64;
        let claims = match ctx
            .parts
            .store
            .claim_due_excluding(
                &ctx.owner,
                now,
                lease_until,
                limit,
                ctx.config.per_connection,
                &ctx.in_flight.full(),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(ctx.config.poll_interval) => {}
                }
                continue;
            }
        };
        if claims.is_empty() {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = ctx.parts.wake.notified() => {}
                _ = tokio::time::sleep(ctx.config.poll_interval) => {}
            }
            continue;
        }
        for claim in claims {
            let connection = claim.connection_id;
            let slots = ctx.in_flight.start(connection, cap_for(&ctx, &claim));
            let (ctx, results, permits) = (ctx.clone(), results_tx.clone(), permits.clone());
            tasks.spawn(async move {
                // First the connection's turn, then a pool slot: a claim waiting behind its own
                // connection's cap holds no pool slot, so a slow, down or throttled connection
                // occupies at most its cap of the pool.
                let slot = slots
                    .acquire_owned()
                    .await
                    .expect("connection slots are never closed");
                let permit = permits
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let record = deliver(&ctx, claim).await;
                drop(slot);
                drop(permit);
                let _ = results.send(record).await;
                ctx.in_flight.end(connection);
            });
        }
    }
    tracing::info!(in_flight = tasks.len(), "delivery workers draining");
    while tasks.join_next().await.is_some() {}
    drop(results_tx);
    let _ = recorder.await;
    heartbeat.abort();
    listener.abort();
    let _ = ctx.parts.store.remove_node(&ctx.owner).await;
    tracing::info!("delivery workers stopped");
    Ok(())
}

/// How many deliveries of the claim's connection this node keeps in flight at most.
fn cap_for(ctx: &Ctx, claim: &ClaimedDelivery) -> usize {
    let limit = claim
        .connection
        .as_ref()
        .and_then(|c| c.rate_limit_per_second)
        .unwrap_or(ctx.config.default_rate_limit);
    let share = ctx
        .parts
        .limiter
        .local_limit(limit, tokio::time::Instant::now()) as usize;
    // A warm delivery is two calls: half the share is about one second of the account's budget.
    (share / 2).clamp(1, ctx.config.per_connection.max(1) as usize)
}

/// Reads the live nodes and tells the limiter this node's place among them; returns how many are live.
async fn membership(ctx: &Ctx) -> anyhow::Result<usize> {
    let now = crate::domain::now();
    ctx.parts.store.heartbeat(&ctx.owner, now).await?;
    let since =
        now - chrono::TimeDelta::from_std(ctx.config.node_ttl).unwrap_or(chrono::TimeDelta::MAX);
    let nodes = ctx.parts.store.live_nodes(since).await?;
    let index = nodes.iter().position(|n| *n == ctx.owner).unwrap_or(0);
    ctx.parts
        .limiter
        .set_membership(nodes.len().max(1), index, tokio::time::Instant::now());
    Ok(nodes.len().max(1))
}

async fn heartbeat_loop(ctx: Arc<Ctx>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(ctx.config.heartbeat) => {}
        }
        if let Err(e) = membership(&ctx).await {
            tracing::warn!(error = %e, "worker heartbeat failed");
        }
        let until = crate::domain::now()
            + chrono::TimeDelta::from_std(ctx.config.lease).unwrap_or(chrono::TimeDelta::MAX);
        if let Err(e) = ctx.parts.store.extend_leases(&ctx.owner, until).await {
            tracing::warn!(error = %e, "renewing delivery leases failed");
        }
        ctx.parts.limiter.prune(tokio::time::Instant::now());
    }
}

/// Commits attempt results in groups: whatever finished while the previous commit ran.
async fn record_loop(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Finished>) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut meta = Vec::new();
        let mut next = Some(first);
        while let Some(f) = next.take() {
            batch.push((f.attempt, f.disposition));
            meta.push(f.meta);
            if batch.len() < 256 {
                next = rx.try_recv().ok();
            }
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match ctx
                .parts
                .store
                .finish_attempts(&batch, &ctx.owner, crate::domain::now())
                .await
            {
                Ok(applied) => {
                    let lost = applied.iter().filter(|a| !**a).count();
                    if lost > 0 {
                        tracing::warn!(lost, "attempts recorded after their lease was lost");
                    }
                    count_recorded(&ctx.parts.metrics, &batch, &meta, &applied);
                    break;
                }
                Err(e) => {
                    // The outcome is known; keep trying to record it (a lease expiry would repeat the call).
                    tracing::warn!(error = %e, items = batch.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Every recorded attempt counts by outcome; a delivered one whose result applied (its lease still
/// held) adds its event's age to the latency histogram.
fn count_recorded(
    metrics: &Metrics,
    batch: &[(AttemptRecord, Disposition)],
    meta: &[Meta],
    applied: &[bool],
) {
    let now = crate::domain::now();
    for (((attempt, _), (integration, created)), applied) in batch.iter().zip(meta).zip(applied) {
        let code = attempt.outcome_code;
        let delivered = *applied && code == OutcomeCode::Delivered;
        let age = delivered.then(|| (now - *created).to_std().unwrap_or_default());
        metrics.attempt_recorded(code, *integration, age);
    }
}

/// Waits for the account's limiter before each call the destination makes.
struct LimiterGate<'a> {
    limiter: &'a AccountLimiter,
    metrics: &'a Metrics,
    account: String,
    limit: u32,
}

#[async_trait::async_trait]
impl CallGate for LimiterGate<'_> {
    async fn before_call(&self) -> bool {
        let waited = self.limiter.acquire(&self.account, self.limit).await;
        waited
            .inspect(|w| self.metrics.rate_limit_waited(*w))
            .is_some()
    }
}

fn result_of(code: OutcomeCode, outcome: Outcome, error: &str) -> ActionResult {
    ActionResult {
        outcome,
        code,
        http_status: None,
        error: Some(error.to_owned()),
        calls: Vec::new(),
    }
}

/// Performs one claimed delivery and decides what happens next.
async fn deliver(ctx: &Ctx, claim: ClaimedDelivery) -> Finished {
    let started_at = crate::domain::now();
    let clock = std::time::Instant::now();
    let result = perform(ctx, &claim).await;
    let duration_ms = clock.elapsed().as_millis() as i64;
    let budgeted = (claim.attempt_count - claim.throttled_count).max(0) as usize + 1;
    let disposition = ctx.parts.policy.decide(
        &result.outcome,
        budgeted,
        crate::domain::now(),
        random_unit(),
    );
    if disposition == Disposition::Parked
        && let Some(c) = &claim.connection
    {
        match ctx
            .parts
            .store
            .park_connection(c.id, "authentication_invalid", crate::domain::now())
            .await
        {
            Ok(true) => {
                tracing::warn!(connection.id = %c.id, "destination rejected the key; connection inactive, deliveries parked")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, connection.id = %c.id, "could not mark the connection inactive")
            }
        }
    }
    tracing::debug!(rule_event.id = %claim.rule_event_id, event.id = %claim.event_id, attempt = claim.attempt_count + 1,
        outcome = result.code.as_str(), duration_ms, "delivery attempt");
    let integration = Integration::of(
        claim
            .connection
            .as_ref()
            .map(|c| c.integration_type.as_str()),
    );
    let attempt = AttemptRecord {
        id: AttemptId::new_v7(),
        organization_id: claim.organization_id,
        workspace_id: claim.workspace_id,
        event_id: claim.event_id,
        rule_event_id: claim.rule_event_id,
        attempt_number: claim.attempt_count + 1,
        started_at,
        duration_ms,
        outcome_code: result.code,
        http_status: result.http_status,
        error: result.error,
        calls: result.calls,
        is_test: false,
    };
    Finished {
        attempt,
        disposition,
        meta: (integration, claim.event_created_at),
    }
}

async fn perform(ctx: &Ctx, claim: &ClaimedDelivery) -> ActionResult {
    let (Some(rule), Some(connection)) = (&claim.rule, &claim.connection) else {
        return result_of(
            OutcomeCode::InternalError,
            Outcome::Gone,
            "the rule or its connection was deleted",
        );
    };
    if !connection.active {
        return result_of(
            OutcomeCode::AuthFailed,
            Outcome::AuthFailed,
            "the connection is inactive (its API key was rejected); fix the connection to resume",
        );
    }
    let Some(payload) = &claim.payload else {
        return result_of(
            OutcomeCode::MappingError,
            Outcome::Permanent {
                code: OutcomeCode::MappingError,
            },
            "the event's payload was purged",
        );
    };
    let action = match parse_metadata(&rule.metadata) {
        Ok(a) => a,
        Err(_) => {
            return result_of(
                OutcomeCode::InternalError,
                Outcome::Permanent {
                    code: OutcomeCode::InternalError,
                },
                "the stored rule does not parse",
            );
        }
    };
    let Ok(api_url) = url::Url::parse(&connection.api_url) else {
        return result_of(
            OutcomeCode::RejectedClientError,
            Outcome::Permanent {
                code: OutcomeCode::RejectedClientError,
            },
            "the connection's api_url is not a URL",
        );
    };
    let key = match ctx.parts.master_key.open(
        &crate::http::connections::api_key_context(connection.id),
        &connection.api_key_ciphertext,
    ) {
        Ok(k) => SecretString::from(String::from_utf8_lossy(&k).into_owned()),
        Err(_) => {
            return result_of(
                OutcomeCode::InternalError,
                Outcome::Permanent {
                    code: OutcomeCode::InternalError,
                },
                "the connection's key cannot be unsealed",
            );
        }
    };
    let view = EventView {
        event: &claim.event,
        resource: &claim.resource,
        resource_id: claim.resource_id.as_deref(),
        payload,
    };
    let gate = LimiterGate {
        limiter: &ctx.parts.limiter,
        metrics: &ctx.parts.metrics,
        account: account_key(&api_url),
        limit: connection
            .rate_limit_per_second
            .unwrap_or(ctx.config.default_rate_limit),
    };
    if ctx
        .parts
        .limiter
        .local_limit(gate.limit, tokio::time::Instant::now())
        == 0
    {
        // More worker nodes than the account allows calls per second: this node's share is zero.
        // Hand the delivery back (throttled, so the budget is not spent) for a node with a share.
        return result_of(
            OutcomeCode::RateLimited,
            Outcome::Throttled {
                retry_after: Some(1),
            },
            "this node has no share of the account's rate limit; another node will deliver",
        );
    }
    // Each call has its own timeout, and the heartbeat renews this node's leases, so a long wait on
    // the rate limiter cannot hand the delivery to another node. The deadline only ends an attempt
    // that hangs.
    let deadline = ctx.config.lease;
    let attempt = ctx
        .parts
        .destination
        .perform(&api_url, key, &action, &view, &gate);
    match tokio::time::timeout(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => result_of(
            OutcomeCode::Timeout,
            Outcome::Transient {
                code: OutcomeCode::Timeout,
                retry_after: None,
            },
            "the attempt did not finish within its deadline",
        ),
    }
}

/// Connections with the same account URL share one limiter.
pub fn account_key(api_url: &url::Url) -> String {
    let mut u = api_url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.as_str().trim_end_matches('/').to_ascii_lowercase()
}
