//! Storage: the one place with SQL. A `Store` trait with a PostgreSQL and an embedded SQLite
//! implementation, both held to the same conformance tests (`tests/storage`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    Connection, ConnectionDeletion, ConnectionId, EventId, EventRecord, InsertOutcome, MachineKey,
    NewEvent, Organization, OrganizationId, PublishableKey, Rule, RuleChange, RuleFilter, RuleId,
    Workspace, WorkspaceId,
};

mod batch;
mod changes;
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
}

/// Reads a stored status; an unknown value is a decode error, not a panic.
pub(crate) fn decode_status(
    value: &str,
) -> std::result::Result<crate::domain::DeliveryStatus, sqlx::Error> {
    crate::domain::DeliveryStatus::parse(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status {value:?}").into()))
}
