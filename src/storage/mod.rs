//! Storage: the one place with SQL. A `Store` trait with a PostgreSQL and an embedded SQLite
//! implementation, both held to the same conformance tests (`tests/storage`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    AttemptId, AttemptRecord, ClaimedDelivery, Connection, ConnectionDeletion, ConnectionId,
    DeliveryStatus, Disposition, EventId, EventRecord, InsertOutcome, MachineKey, NewEvent,
    Organization, OrganizationId, PublishableKey, Rule, RuleChange, RuleEventId, RuleFilter,
    RuleId, Workspace, WorkspaceId,
};

mod batch;
mod changes;
mod delivery;
pub mod operations;
pub mod postgres;
pub mod sqlite;
#[doc(hidden)]
pub mod testing;

/// How long an idempotency record answers repeats.
pub const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Errors from storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint was violated; the string names what collided (e.g. `workspace_name`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// A row the write refers to does not exist for the tenant; the string names it: `workspace`
    /// for a connection, `connection` for a rule whose connection is not in the rule's workspace.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
    /// The database answers but some known migrations are not applied (`ready()`).
    #[error("database is not migrated: {0} migration(s) pending")]
    NotMigrated(usize),
    /// Preparing the database location failed (e.g. creating the SQLite file's directory).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Pool settings for [`connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Upper bound on pooled connections (on SQLite: the read pool; writes always use one connection).
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
        }
    }
}

/// Opens the store a URL names: `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite:path` or
/// `sqlite://path` → SQLite (the file and its directory are created when missing). Anything else is
/// `UnsupportedUrl`. Does not migrate: callers call [`Store::migrate`].
pub async fn connect(url: &str, options: ConnectOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PostgresStore::connect(url, options).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?))
    } else {
        // Only the scheme: the rest may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StorageError::UnsupportedUrl(format!("{scheme}:…")))
    }
}

/// Keyset page request: rows strictly older than `before` (ids are time-ordered v7), newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Maximum rows to return. Callers ask for one more than they show, to know whether a next page exists.
    pub limit: i64,
    /// Exclusive upper bound on the id (the last id of the previous page).
    pub before: Option<Uuid>,
}

/// One rule event as delivery history shows it (the API's RuleEvent), joined with its event's name,
/// resource and resource id.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEventRecord {
    pub id: RuleEventId,
    pub organization_id: OrganizationId,
    pub workspace_id: WorkspaceId,
    pub event_id: EventId,
    /// The rule that matched (it may have been deleted since).
    pub rule_id: RuleId,
    /// The connection delivered to (it may have been deleted since).
    pub connection_id: ConnectionId,
    pub integration_type: String,
    pub status: DeliveryStatus,
    /// Every attempt, throttled ones included.
    pub attempt_count: i64,
    /// Of those, the throttled ones (they do not spend the retry budget).
    pub throttled_count: i64,
    /// `None` when final, in flight, or parked (`retrying` with no next attempt).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The event's name (`page.completed`).
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
}

/// The claimable queue at one instant (for metrics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueStats {
    /// Rule events a claim would take now: due ones and those whose lease expired.
    pub due: i64,
    /// How long the oldest of them has been due, in seconds (0 when none is).
    pub oldest_due_age_seconds: f64,
}

/// Everything Handoff stores. Every method on tenant data takes the organization id first and filters on it:
/// a row of another organization is simply not found.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations (forward-only).
    async fn migrate(&self) -> Result<()>;

    /// Ok when the database answers and every known migration is applied.
    async fn ready(&self) -> Result<()>;

    /// True when no organization exists yet (first start).
    async fn is_empty(&self) -> Result<bool>;

    /// Creates an organization with one workspace, its machine key and the workspace's publishable key,
    /// in one transaction.
    async fn create_tenant(
        &self,
        org: &Organization,
        workspace: &Workspace,
        machine_key: &MachineKey,
        publishable_key: &PublishableKey,
    ) -> Result<()>;

    /// Looks a machine key up by its access key (the JWT `kid`).
    async fn find_machine_key(&self, access_key: &str) -> Result<Option<MachineKey>>;

    /// Looks an *active* publishable key up by its full `mesh_pub_…` string.
    async fn find_publishable_key(&self, public_key: &str) -> Result<Option<PublishableKey>>;

    /// Creates a workspace and its first publishable key. `Conflict("workspace_name")` when the
    /// organization already has a workspace of that name (case-insensitive).
    async fn create_workspace(&self, workspace: &Workspace, key: &PublishableKey) -> Result<()>;

    /// The organization's workspaces, newest first.
    async fn list_workspaces(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<Workspace>>;

    async fn get_workspace(
        &self,
        org: OrganizationId,
        id: WorkspaceId,
    ) -> Result<Option<Workspace>>;

    /// Sets name and description (the caller has already resolved "omitted keeps"), bumps `updated_at`.
    /// `None` when not found; `Conflict("workspace_name")` on a duplicate name.
    async fn update_workspace(
        &self,
        org: OrganizationId,
        id: WorkspaceId,
        name: &str,
        description: Option<&str>,
        updated_at: DateTime<Utc>,
    ) -> Result<Option<Workspace>>;

    /// The workspace's active publishable key.
    async fn active_publishable_key(
        &self,
        org: OrganizationId,
        workspace: WorkspaceId,
    ) -> Result<Option<PublishableKey>>;

    /// Deactivates the workspace's active key and stores `new` as the active one, in one transaction.
    /// False (and nothing changed) when the workspace is not the organization's.
    async fn rotate_publishable_key(
        &self,
        org: OrganizationId,
        workspace: WorkspaceId,
        new: &PublishableKey,
    ) -> Result<bool>;

    /// Commits a batch of events in **one transaction** (group commit): each event, its rule events and
    /// its idempotency record. Outcomes come back in input order. Idempotency: a key already recorded
    /// for the workspace within `IDEMPOTENCY_WINDOW` (measured from the new event's `created_at`) is a
    /// `Replayed` (same hash) or `IdempotencyConflict` (other hash) and stores nothing; this also holds
    /// when two batches race on one key (the loser waits for the winner's commit and replays it), and
    /// when one batch carries the same key twice. An expired record is replaced.
    async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<InsertOutcome>>;

    async fn get_event(&self, org: OrganizationId, id: EventId) -> Result<Option<EventRecord>>;

    /// Deletes idempotency records created before `before`; returns how many.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64>;

    // Connections and rules. Every write below announces `RuleChange::Workspace` of the affected
    // workspace on the change feed once it has committed (and only when it changed something).

    /// Stores a new connection. `NotFound("workspace")` when its workspace is not its organization's.
    async fn create_connection(&self, connection: &Connection) -> Result<()>;

    async fn get_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> Result<Option<Connection>>;

    /// The organization's connections (or one workspace's), newest first.
    async fn list_connections(
        &self,
        org: OrganizationId,
        workspace: Option<WorkspaceId>,
        page: PageRequest,
    ) -> Result<Vec<Connection>>;

    /// Replaces name, api_url, api_key_ciphertext, rate_limit_per_second, hidden, active,
    /// inactive_reason and updated_at of the connection `connection.id`; the other fields stay.
    /// `None` when the organization has no such connection.
    async fn update_connection(
        &self,
        org: OrganizationId,
        connection: &Connection,
    ) -> Result<Option<Connection>>;

    /// Deletes a connection. While rules use it, only with `force`, which deletes those rules in
    /// the same transaction; without it the answer is `InUse` and nothing changes.
    async fn delete_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        force: bool,
    ) -> Result<ConnectionDeletion>;

    /// Marks a connection active or inactive (the delivery engine, after the destination rejected
    /// or accepted its key). False when the organization has no such connection.
    async fn set_connection_active(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        active: bool,
        inactive_reason: Option<&str>,
        updated_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Stores a new rule. `NotFound("connection")` when its connection is not in its workspace
    /// (or the workspace is not its organization's).
    async fn create_rule(&self, rule: &Rule) -> Result<()>;

    async fn get_rule(&self, org: OrganizationId, id: RuleId) -> Result<Option<Rule>>;

    /// The organization's rules matching every filter that is set, newest first.
    async fn list_rules(
        &self,
        org: OrganizationId,
        filter: &RuleFilter,
        page: PageRequest,
    ) -> Result<Vec<Rule>>;

    /// Replaces connection_id, integration_type, event, resource, resource_id, metadata,
    /// conditions, active, hidden and updated_at of the rule `rule.id`. `None` when the
    /// organization has no such rule; `NotFound("connection")` when the new connection is not in
    /// the rule's workspace.
    async fn update_rule(&self, org: OrganizationId, rule: &Rule) -> Result<Option<Rule>>;

    /// Deletes a rule and returns it as it was. Its delivery history stays.
    async fn delete_rule(&self, org: OrganizationId, id: RuleId) -> Result<Option<Rule>>;

    /// Every rule of a workspace, active or not, oldest first: what the rule cache loads.
    async fn workspace_rules(&self, workspace: WorkspaceId) -> Result<Vec<Rule>>;

    /// Subscribes to the change feed: `RuleChange::Workspace(w)` after any committed write to
    /// `w`'s rules or connections through any store on the same database (on PostgreSQL: any
    /// node), and `RuleChange::All` when changes may have been missed (the listener reconnected, or
    /// this receiver fell behind). Changes committed after this returns are announced. The feed
    /// ends (`recv()` gives `None`) when this store is dropped; dropping the receiver stops its
    /// background task.
    async fn rule_changes(&self) -> Result<tokio::sync::mpsc::Receiver<RuleChange>>;

    // The delivery queue. A claim leases rule events to one owner (a worker pool); only that owner
    // can finish them while the lease holds, and an expired lease makes them claimable again.

    /// Claims up to `limit` rule events, atomically: due ones (`pending`/`retrying` with
    /// `next_attempt_at <= now`) and those whose lease expired (`processing`, `lease_until < now`),
    /// oldest due first, at most `per_connection` of any one connection (so a backed-up connection
    /// cannot fill a worker). Each becomes `processing` under `owner` until `lease_until`; its
    /// `started_at` (and its event's) is set on the first claim, and a `pending` event becomes
    /// `processing`. Returns the claims joined with the event, the rule and the connection as
    /// they are now. Two concurrent claims never return the same rule event. No transaction is
    /// left open.
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        per_connection: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.claim_due_excluding(owner, now, lease_until, limit, per_connection, &[])
            .await
    }

    /// [`Store::claim_due`], leaving the rule events of `exclude`d connections alone (a worker
    /// excludes the connections it already has enough of in flight, so a rate-limited account's
    /// backlog is not claimed faster than it can be delivered — and outlive its leases).
    async fn claim_due_excluding(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        per_connection: i64,
        exclude: &[crate::domain::ConnectionId],
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Records an attempt and applies its disposition, in one transaction; see
    /// [`Store::finish_attempts`]. True when the lease was still `owner`'s.
    async fn finish_attempt(
        &self,
        attempt: &AttemptRecord,
        disposition: &Disposition,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let items = [(attempt.clone(), disposition.clone())];
        let applied = self.finish_attempts(&items, owner, now).await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// Records attempts and applies their dispositions, all in one transaction (group commit).
    /// Every attempt is appended to history. Its rule event changes only while it is still
    /// `processing` under `owner` (otherwise the lease was lost: the answer for that item is
    /// false): `attempt_count + 1` (and `throttled_count + 1` for a throttled retry), lease
    /// cleared, `last_error` = the attempt's error (`None` when completed), and by disposition:
    /// `completed` / `failed` / `canceled` with `completed_at = now`, `retrying` at the given time,
    /// or parked (`retrying`, no next attempt). Each touched event is rolled up from all its
    /// rule events: counts, status and `completed_at` once every rule event is final. A rule event
    /// named twice in one batch is finished by its first item only (as if finished in turn).
    async fn finish_attempts(
        &self,
        items: &[(AttemptRecord, Disposition)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>>;

    /// Makes the organization's parked deliveries through `connection` (`retrying` with no next
    /// attempt) due at `now`; returns how many.
    async fn resume_parked(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<u64>;

    /// Marks an active connection inactive with `reason` (a worker saw its key rejected; no
    /// organization at hand) and announces the change. False, with nothing changed or announced,
    /// when there is no such connection or it is already inactive (every in-flight delivery of a
    /// rejected key calls this; only the first changes anything).
    async fn park_connection(
        &self,
        connection: ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records that the worker node `node_id` is alive at `now` (insert or update).
    async fn heartbeat(&self, node_id: &str, now: DateTime<Utc>) -> Result<()>;

    /// Nodes whose last heartbeat is at or after `since`, sorted by id.
    async fn live_nodes(&self, since: DateTime<Utc>) -> Result<Vec<String>>;

    /// Moves the lease of every delivery `owner` holds (`processing` under `owner`) to `until`;
    /// returns how many. A live node renews its leases while it works, so only the leases of a
    /// node that died expire, however long an attempt waits on a rate limit.
    async fn extend_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64>;

    /// Forgets a node (it shut down cleanly). Removing an unknown node is not an error.
    async fn remove_node(&self, node_id: &str) -> Result<()>;

    /// The event's rule events, oldest first; empty when the organization has no such event.
    async fn list_rule_events(
        &self,
        org: OrganizationId,
        event: EventId,
    ) -> Result<Vec<RuleEventRecord>>;

    /// One rule event's attempts, newest first, keyset-paged by attempt id.
    async fn list_attempts(
        &self,
        org: OrganizationId,
        rule_event: RuleEventId,
        page: PageRequest,
    ) -> Result<Vec<AttemptRecord>>;

    async fn get_attempt(
        &self,
        org: OrganizationId,
        id: AttemptId,
    ) -> Result<Option<AttemptRecord>>;

    /// The claimable queue at `now` (all organizations).
    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats>;

    // What support reads and does (`operations`). A rule event is named by its event and either
    // its own id or its rule's id (clients use both).

    /// The organization's events (or one workspace's) matching `filter`, newest first.
    async fn list_events(
        &self,
        org: OrganizationId,
        filter: &operations::EventFilter,
        page: PageRequest,
    ) -> Result<Vec<EventRecord>>;

    /// The event's payload: `None` when the organization has no such event, `Some(None)` when
    /// the payload was purged.
    async fn event_payload(
        &self,
        org: OrganizationId,
        id: EventId,
    ) -> Result<Option<Option<serde_json::Value>>>;

    /// One rule event of an event.
    async fn get_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
    ) -> Result<Option<RuleEventRecord>>;

    /// Makes one rule event due at `now` (see `operations::retry_verdict`), rolls its event up
    /// and wakes workers on every node, in one transaction.
    async fn retry_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<operations::Manual>;

    /// Cancels one rule event (see `operations::cancel_verdict`): `canceled`, no next attempt, so
    /// an attempt in flight cannot apply its result; the lease's time stays, so a replay leaves the
    /// delivery alone until that attempt's lease has passed. Rolls its event up. Send Test
    /// Event's records answer `Manual::Test` to a retry.
    async fn cancel_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<operations::Manual>;

    /// Cancels every rule event of the event that is not completed (failed ones too, so a replay
    /// of failures leaves them alone), as `cancel_rule_event` does; `None` when the organization
    /// has no such event, else how many were canceled.
    async fn cancel_event(
        &self,
        org: OrganizationId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>>;

    /// Requeues (due at `now`) at most `limit` of the rule events `filter` matches, oldest
    /// first, rolling their events up and waking workers, in one transaction. A delivery whose
    /// attempt may still be in flight (canceled under a lease that has not passed) is left out.
    async fn replay(
        &self,
        org: OrganizationId,
        filter: &operations::ReplayFilter,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<operations::Replayed>;

    /// Stores Send Test Event's event, rule event and attempt, final, in one transaction.
    async fn insert_test_delivery(&self, test: &operations::TestDelivery) -> Result<()>;
}

/// Reads a stored outcome code; an unknown value is a decode error, not a panic.
pub(crate) fn decode_outcome(
    value: &str,
) -> std::result::Result<crate::domain::OutcomeCode, sqlx::Error> {
    crate::domain::OutcomeCode::parse(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown outcome code {value:?}").into()))
}

/// Reads a stored status; an unknown value is a decode error, not a panic.
pub(crate) fn decode_status(
    value: &str,
) -> std::result::Result<crate::domain::DeliveryStatus, sqlx::Error> {
    crate::domain::DeliveryStatus::parse(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status {value:?}").into()))
}
