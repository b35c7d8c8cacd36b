//! Embedded SQLite implementation of `Store`: WAL, one writer connection, a separate read pool.
//!
//! Every write goes through a pool of exactly one connection, so writers queue in-process instead of
//! fighting over the database lock; reads use their own pool and never block the writer (WAL).
//! Timestamps are INTEGER microseconds since the epoch, UUIDs 16-byte BLOBs, JSON TEXT.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::batch::{self, Claim, ClaimResult};
use super::{
    ConnectOptions, IDEMPOTENCY_WINDOW, PageRequest, QueueStats, Result, RuleEventRecord,
    StorageError, Store, changes, decode_status,
};
use crate::domain::{
    AttemptId, AttemptRecord, ClaimedDelivery, Connection, ConnectionDeletion, ConnectionId,
    Disposition, EventId, EventRecord, InsertOutcome, MachineKey, NewEvent, Organization,
    OrganizationId, PublishableKey, Rule, RuleChange, RuleEventId, RuleFilter, RuleId, Workspace,
    WorkspaceId,
};

mod delivery;
mod history;
mod operations;
mod rules;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const EVENT_COLUMNS: &str = "id, organization_id, workspace_id, event, resource, resource_id, \
     created_by, created_at, status, total_rules, completed_count, failed_count, started_at, \
     completed_at";
const WORKSPACE_COLUMNS: &str = "id, organization_id, name, description, created_at, updated_at";
const KEY_COLUMNS: &str = "id, organization_id, workspace_id, public_key, name, created_at";

/// A `Store` on an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: all writes.
    writer: SqlitePool,
    /// Reads only.
    reader: SqlitePool,
    /// The rule change broadcast of this file, shared with every other store of the process on it.
    hub: changes::Hub,
    /// Ends the change feeds this store started when its last clone is dropped.
    alive: changes::Alive,
}

impl SqliteStore {
    /// Opens (creating when missing) the database a `sqlite:` URL names (not migrated).
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self> {
        let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        if database.is_empty()
            || database == ":memory:"
            || params.split('&').any(|p| p == "mode=memory")
        {
            // Two pools would see two different in-memory databases.
            return Err(StorageError::UnsupportedUrl(
                "sqlite in-memory databases are not supported; name a file".into(),
            ));
        }
        let base = SqliteConnectOptions::from_str(url)?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // FULL: an acknowledged event must survive power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full);
        let path = base.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await?;
        // The writer has created the file (so it can be canonicalized) and switched it to WAL (a
        // persistent setting).
        let hub = changes::hub(path);
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        Ok(Self {
            writer,
            reader,
            hub,
            alive: changes::alive(),
        })
    }

    /// Starts a write transaction that holds the write lock from its first statement, so a read
    /// inside it can never be invalidated by another process's write (no SQLITE_BUSY upgrade).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn try_insert_events(
        &self,
        batch: &[NewEvent],
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let claims = batch::claims(batch);
        let mut results = Vec::with_capacity(claims.len());
        for claim in &claims {
            results.push(claim_key(&mut tx, &batch[claim.index], claim).await?);
        }
        let resolution = batch::resolve(batch, &claims, results);
        for &i in &resolution.to_insert {
            insert_event(&mut tx, &batch[i]).await?;
        }
        tx.commit().await?;
        Ok(resolution.outcomes)
    }
}

/// Claims one key: inserts the record, replacing an expired one; otherwise reads the live record.
/// The single writer makes this race-free within the process; `BEGIN IMMEDIATE` across processes.
async fn claim_key(
    tx: &mut Transaction<'static, Sqlite>,
    event: &NewEvent,
    claim: &Claim<'_>,
) -> Result<ClaimResult, sqlx::Error> {
    let won = sqlx::query(
        "INSERT INTO idempotency_keys \
             (workspace_id, key, organization_id, request_hash, event_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (workspace_id, key) DO UPDATE SET \
             organization_id = excluded.organization_id, \
             request_hash = excluded.request_hash, \
             event_id = excluded.event_id, \
             created_at = excluded.created_at \
         WHERE idempotency_keys.created_at <= excluded.created_at - ?7 \
         RETURNING 1",
    )
    .bind(claim.workspace_id)
    .bind(claim.key)
    .bind(event.organization_id.0)
    .bind(claim.request_hash)
    .bind(event.id.0)
    .bind(micros(event.created_at))
    .bind(window_micros())
    .fetch_optional(&mut **tx)
    .await?;
    if won.is_some() {
        return Ok(ClaimResult::Won);
    }
    let row = sqlx::query(
        "SELECT i.request_hash, e.id, e.organization_id, e.workspace_id, e.event, e.resource, \
                e.resource_id, e.created_by, e.created_at, e.status, e.total_rules, \
                e.completed_count, e.failed_count, e.started_at, e.completed_at \
         FROM idempotency_keys i JOIN events e ON e.id = i.event_id \
         WHERE i.workspace_id = ?1 AND i.key = ?2",
    )
    .bind(claim.workspace_id)
    .bind(claim.key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(ClaimResult::Existing {
        request_hash: row.try_get("request_hash")?,
        event: Box::new(event_record(&row)?),
    })
}

/// Inserts one event and its rule events (statements are prepared once per connection and reused).
async fn insert_event(
    tx: &mut Transaction<'static, Sqlite>,
    e: &NewEvent,
) -> Result<(), sqlx::Error> {
    let record = batch::inserted_record(e);
    let payload =
        serde_json::to_string(&e.payload).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    sqlx::query(
        "INSERT INTO events (id, organization_id, workspace_id, event, resource, resource_id, \
             payload, contact_email, created_by, created_at, status, total_rules, completed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .bind(e.id.0)
    .bind(e.organization_id.0)
    .bind(e.workspace_id.0)
    .bind(&e.event)
    .bind(&e.resource)
    .bind(&e.resource_id)
    .bind(payload)
    .bind(&e.contact_email)
    .bind(&e.created_by)
    .bind(micros(e.created_at))
    .bind(e.status.as_str())
    .bind(record.total_rules)
    .bind(record.completed_at.map(micros))
    .execute(&mut **tx)
    .await?;
    for r in &e.rule_events {
        // New deliveries are due at once: next_attempt_at = created_at.
        sqlx::query(
            "INSERT INTO rule_events (id, organization_id, workspace_id, event_id, rule_id, \
                 connection_id, integration_type, status, next_attempt_at, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?8)",
        )
        .bind(r.id.0)
        .bind(e.organization_id.0)
        .bind(e.workspace_id.0)
        .bind(e.id.0)
        .bind(r.rule_id.0)
        .bind(r.connection_id.0)
        .bind(&r.integration_type)
        .bind(micros(e.created_at))
        .bind(&e.created_by)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Microseconds since the Unix epoch: integer order is time order, and the value round-trips
/// exactly (both backends keep microseconds).
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(value: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("timestamp {value} out of range").into()))
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    from_micros(row.try_get(column)?)
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get::<Option<i64>, _>(column)?
        .map(from_micros)
        .transpose()
}

fn window_micros() -> i64 {
    IDEMPOTENCY_WINDOW
        .num_microseconds()
        .expect("a 24 h window fits in i64 microseconds")
}

/// Maps a unique violation on a known constraint to `Conflict`. SQLite names the columns, not the
/// index, in its message.
fn conflict_or(err: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let message = db.message();
            let what = [
                ("workspaces.name_key", "workspace_name"),
                ("publishable_keys.public_key", "public_key"),
                ("publishable_keys.workspace_id", "active_publishable_key"),
                ("machine_keys.access_key", "access_key"),
            ]
            .into_iter()
            .find(|(columns, _)| message.contains(columns));
            if let Some((_, what)) = what {
                return StorageError::Conflict(what);
            }
        }
    }
    StorageError::Database(err)
}

fn event_record(row: &SqliteRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: EventId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event: row.try_get("event")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
        created_by: row.try_get("created_by")?,
        created_at: time(row, "created_at")?,
        status: decode_status(row.try_get("status")?)?,
        total_rules: row.try_get("total_rules")?,
        completed_count: row.try_get("completed_count")?,
        failed_count: row.try_get("failed_count")?,
        started_at: optional_time(row, "started_at")?,
        completed_at: optional_time(row, "completed_at")?,
    })
}

fn workspace(row: &SqliteRow) -> Result<Workspace, sqlx::Error> {
    Ok(Workspace {
        id: WorkspaceId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn publishable_key(row: &SqliteRow) -> Result<PublishableKey, sqlx::Error> {
    Ok(PublishableKey {
        id: row.try_get::<Uuid, _>("id")?.into(),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        public_key: row.try_get("public_key")?,
        name: row.try_get("name")?,
        created_at: time(row, "created_at")?,
    })
}

async fn insert_workspace(
    tx: &mut Transaction<'static, Sqlite>,
    w: &Workspace,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, name, name_key, description, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(w.id.0)
    .bind(w.organization_id.0)
    .bind(&w.name)
    .bind(w.name.to_lowercase())
    .bind(&w.description)
    .bind(micros(w.created_at))
    .bind(micros(w.updated_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_publishable_key(
    tx: &mut Transaction<'static, Sqlite>,
    k: &PublishableKey,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO publishable_keys (id, organization_id, workspace_id, public_key, name, \
             active, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
    )
    .bind(k.id.0)
    .bind(k.organization_id.0)
    .bind(k.workspace_id.0)
    .bind(&k.public_key)
    .bind(&k.name)
    .bind(micros(k.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                            WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.reader)
        .await?;
        let applied: Vec<i64> = if has_table {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await?
        } else {
            Vec::new()
        };
        let pending = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .count();
        if pending > 0 {
            return Err(StorageError::NotMigrated(pending));
        }
        Ok(())
    }

    async fn is_empty(&self) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM organizations)")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn create_tenant(
        &self,
        org: &Organization,
        workspace: &Workspace,
        machine_key: &MachineKey,
        publishable_key: &PublishableKey,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)")
            .bind(org.id.0)
            .bind(&org.name)
            .bind(micros(org.created_at))
            .execute(&mut *tx)
            .await?;
        insert_workspace(&mut tx, workspace)
            .await
            .map_err(conflict_or)?;
        sqlx::query(
            "INSERT INTO machine_keys (access_key, organization_id, secret_ciphertext, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&machine_key.access_key)
        .bind(machine_key.organization_id.0)
        .bind(&machine_key.secret_ciphertext)
        .bind(micros(machine_key.created_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or)?;
        insert_publishable_key(&mut tx, publishable_key)
            .await
            .map_err(conflict_or)?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_machine_key(&self, access_key: &str) -> Result<Option<MachineKey>> {
        let row = sqlx::query(
            "SELECT access_key, organization_id, secret_ciphertext, created_at FROM machine_keys \
             WHERE access_key = ?1 AND revoked_at IS NULL",
        )
        .bind(access_key)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(MachineKey {
            access_key: row.try_get("access_key")?,
            organization_id: OrganizationId(row.try_get("organization_id")?),
            secret_ciphertext: row.try_get("secret_ciphertext")?,
            created_at: time(&row, "created_at")?,
        }))
    }

    async fn find_publishable_key(&self, public_key: &str) -> Result<Option<PublishableKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM publishable_keys WHERE public_key = ?1 AND active = 1"
        ))
        .bind(public_key)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(publishable_key).transpose()?)
    }

    async fn create_workspace(&self, workspace: &Workspace, key: &PublishableKey) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_workspace(&mut tx, workspace)
            .await
            .map_err(conflict_or)?;
        insert_publishable_key(&mut tx, key)
            .await
            .map_err(conflict_or)?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_workspaces(
        &self,
        org: OrganizationId,
        page: PageRequest,
    ) -> Result<Vec<Workspace>> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces \
             WHERE organization_id = ?1 AND (?2 IS NULL OR id < ?2) \
             ORDER BY id DESC LIMIT ?3"
        ))
        .bind(org.0)
        .bind(page.before)
        .bind(page.limit.max(0))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(workspace).collect::<Result<_, _>>()?)
    }

    async fn get_workspace(
        &self,
        org: OrganizationId,
        id: WorkspaceId,
    ) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = ?1 AND organization_id = ?2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(workspace).transpose()?)
    }

    async fn update_workspace(
        &self,
        org: OrganizationId,
        id: WorkspaceId,
        name: &str,
        description: Option<&str>,
        updated_at: DateTime<Utc>,
    ) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!(
            "UPDATE workspaces SET name = ?3, name_key = ?4, description = ?5, updated_at = ?6 \
             WHERE id = ?1 AND organization_id = ?2 RETURNING {WORKSPACE_COLUMNS}"
        ))
        .bind(id.0)
        .bind(org.0)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(description)
        .bind(micros(updated_at))
        .fetch_optional(&self.writer)
        .await
        .map_err(conflict_or)?;
        Ok(row.as_ref().map(workspace).transpose()?)
    }

    async fn active_publishable_key(
        &self,
        org: OrganizationId,
        workspace: WorkspaceId,
    ) -> Result<Option<PublishableKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM publishable_keys \
             WHERE workspace_id = ?1 AND organization_id = ?2 AND active = 1"
        ))
        .bind(workspace.0)
        .bind(org.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(publishable_key).transpose()?)
    }

    async fn rotate_publishable_key(
        &self,
        org: OrganizationId,
        workspace: WorkspaceId,
        new: &PublishableKey,
    ) -> Result<bool> {
        if new.organization_id != org || new.workspace_id != workspace {
            return Ok(false);
        }
        // BEGIN IMMEDIATE already serializes concurrent rotations.
        let mut tx = self.begin_write().await?;
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM workspaces WHERE id = ?1 AND organization_id = ?2")
                .bind(workspace.0)
                .bind(org.0)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE publishable_keys SET active = 0, deactivated_at = ?3 \
             WHERE workspace_id = ?1 AND organization_id = ?2 AND active = 1",
        )
        .bind(workspace.0)
        .bind(org.0)
        .bind(micros(new.created_at))
        .execute(&mut *tx)
        .await?;
        insert_publishable_key(&mut tx, new)
            .await
            .map_err(conflict_or)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<InsertOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.try_insert_events(batch).await?)
    }

    async fn get_event(&self, org: OrganizationId, id: EventId) -> Result<Option<EventRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 AND organization_id = ?2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(event_record).transpose()?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
            .bind(micros(before))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_connection(&self, connection: &Connection) -> Result<()> {
        self.insert_connection(connection).await
    }

    async fn get_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> Result<Option<Connection>> {
        self.select_connection(org, id).await
    }

    async fn list_connections(
        &self,
        org: OrganizationId,
        workspace: Option<WorkspaceId>,
        page: PageRequest,
    ) -> Result<Vec<Connection>> {
        self.select_connections(org, workspace, page).await
    }

    async fn update_connection(
        &self,
        org: OrganizationId,
        connection: &Connection,
    ) -> Result<Option<Connection>> {
        self.replace_connection(org, connection).await
    }

    async fn delete_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        force: bool,
    ) -> Result<ConnectionDeletion> {
        self.remove_connection(org, id, force).await
    }

    async fn set_connection_active(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        active: bool,
        inactive_reason: Option<&str>,
        updated_at: DateTime<Utc>,
    ) -> Result<bool> {
        self.mark_connection(org, id, active, inactive_reason, updated_at)
            .await
    }

    async fn create_rule(&self, rule: &Rule) -> Result<()> {
        self.insert_rule(rule).await
    }

    async fn get_rule(&self, org: OrganizationId, id: RuleId) -> Result<Option<Rule>> {
        self.select_rule(org, id).await
    }

    async fn list_rules(
        &self,
        org: OrganizationId,
        filter: &RuleFilter,
        page: PageRequest,
    ) -> Result<Vec<Rule>> {
        self.select_rules(org, filter, page).await
    }

    async fn update_rule(&self, org: OrganizationId, rule: &Rule) -> Result<Option<Rule>> {
        self.replace_rule(org, rule).await
    }

    async fn delete_rule(&self, org: OrganizationId, id: RuleId) -> Result<Option<Rule>> {
        self.remove_rule(org, id).await
    }

    async fn workspace_rules(&self, workspace: WorkspaceId) -> Result<Vec<Rule>> {
        self.select_workspace_rules(workspace).await
    }

    async fn rule_changes(&self) -> Result<tokio::sync::mpsc::Receiver<RuleChange>> {
        Ok(changes::bridge(&self.hub, &self.alive))
    }

    async fn claim_due_excluding(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        per_connection: i64,
        exclude: &[ConnectionId],
    ) -> Result<Vec<ClaimedDelivery>> {
        self.claim(owner, now, lease_until, limit, per_connection, exclude)
            .await
    }

    async fn finish_attempts(
        &self,
        items: &[(AttemptRecord, Disposition)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        self.finish(items, owner, now).await
    }

    async fn resume_parked(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.resume(org, connection, now).await
    }

    async fn park_connection(
        &self,
        connection: ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.park(connection, reason, now).await
    }

    async fn heartbeat(&self, node_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.beat(node_id, now).await
    }

    async fn live_nodes(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        self.nodes_since(since).await
    }

    async fn remove_node(&self, node_id: &str) -> Result<()> {
        self.forget_node(node_id).await
    }

    async fn extend_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        self.renew_leases(owner, until).await
    }

    async fn list_rule_events(
        &self,
        org: OrganizationId,
        event: EventId,
    ) -> Result<Vec<RuleEventRecord>> {
        self.select_rule_events(org, event).await
    }

    async fn list_attempts(
        &self,
        org: OrganizationId,
        rule_event: RuleEventId,
        page: PageRequest,
    ) -> Result<Vec<AttemptRecord>> {
        self.select_attempts(org, rule_event, page).await
    }

    async fn get_attempt(
        &self,
        org: OrganizationId,
        id: AttemptId,
    ) -> Result<Option<AttemptRecord>> {
        self.select_attempt(org, id).await
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
        self.stats(now).await
    }

    async fn list_events(
        &self,
        org: OrganizationId,
        filter: &super::operations::EventFilter,
        page: PageRequest,
    ) -> Result<Vec<EventRecord>> {
        self.select_events(org, filter, page).await
    }

    async fn event_payload(
        &self,
        org: OrganizationId,
        id: EventId,
    ) -> Result<Option<Option<serde_json::Value>>> {
        self.select_payload(org, id).await
    }

    async fn get_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
    ) -> Result<Option<RuleEventRecord>> {
        self.select_rule_event(org, event, rule).await
    }

    async fn retry_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<super::operations::Manual> {
        self.manual_retry(org, event, rule, now).await
    }

    async fn cancel_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<super::operations::Manual> {
        self.manual_cancel(org, event, rule, now).await
    }

    async fn cancel_event(
        &self,
        org: OrganizationId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        self.cancel_whole_event(org, event, now).await
    }

    async fn replay(
        &self,
        org: OrganizationId,
        filter: &super::operations::ReplayFilter,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<super::operations::Replayed> {
        self.requeue(org, filter, now, limit).await
    }

    async fn insert_test_delivery(&self, test: &super::operations::TestDelivery) -> Result<()> {
        self.store_test_delivery(test).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_is_durable_and_the_readers_cannot_write() {
        let dir = std::env::temp_dir().join(format!("handoff-pragmas-{}", Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", dir.join("handoff.db").display());
        let store = SqliteStore::connect(&url, ConnectOptions::default())
            .await
            .unwrap();

        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        let write_through_reader = sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&store.reader)
            .await;
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 2, "FULL");
        assert_eq!(foreign_keys, 1);
        assert!(write_through_reader.is_err());
    }
}
