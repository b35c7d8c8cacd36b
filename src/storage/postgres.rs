//! PostgreSQL implementation of `Store`: runtime-checked sqlx queries over a connection pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How often a batch is retried when PostgreSQL aborts it to break a deadlock or a serialization
/// conflict (both safe to retry: the aborted transaction changed nothing).
const TRANSIENT_RETRIES: usize = 3;

const EVENT_COLUMNS: &str = "e.id, e.organization_id, e.workspace_id, e.event, e.resource, \
     e.resource_id, e.created_by, e.created_at, e.status, e.total_rules, e.completed_count, \
     e.failed_count, e.started_at, e.completed_at";

/// A `Store` on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Ends the change feeds this store started when its last clone is dropped.
    alive: changes::Alive,
}

impl PostgresStore {
    /// Connects a pool to `url` (not migrated).
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            alive: changes::alive(),
        })
    }

    /// The underlying pool, for code that composes its own statements in `storage`.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn try_insert_events(
        &self,
        batch: &[NewEvent],
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let claims = batch::claims(batch);
        let results = claim_keys(&mut tx, batch, &claims).await?;
        let resolution = batch::resolve(batch, &claims, results);
        insert_rows(&mut tx, batch, &resolution.to_insert).await?;
        if resolution
            .to_insert
            .iter()
            .any(|&i| !batch[i].rule_events.is_empty())
        {
            // Wakes the delivery workers of every node once this commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::storage::changes::CHANNEL)
                .bind(crate::storage::changes::DELIVERIES_DUE)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(resolution.outcomes)
    }
}

/// Claims every key with one statement, then reads the records that won elsewhere. A key that is
/// held by an uncommitted transaction makes the claim wait for that commit (the unique index
/// blocks), after which the winner's rows are visible to our next statement (READ COMMITTED).
async fn claim_keys(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[NewEvent],
    claims: &[Claim<'_>],
) -> Result<Vec<ClaimResult>, sqlx::Error> {
    let mut results: Vec<Option<ClaimResult>> = claims.iter().map(|_| None).collect();
    // A record we lost to can vanish before we read it (purged, or replaced as expired by a third
    // batch); those keys are simply claimed again.
    for _round in 0..TRANSIENT_RETRIES {
        let open: Vec<usize> = (0..claims.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if open.is_empty() {
            break;
        }
        let mut workspaces = Vec::with_capacity(open.len());
        let mut keys = Vec::with_capacity(open.len());
        let mut organizations = Vec::with_capacity(open.len());
        let mut hashes = Vec::with_capacity(open.len());
        let mut event_ids = Vec::with_capacity(open.len());
        let mut created = Vec::with_capacity(open.len());
        for &i in &open {
            let claim = &claims[i];
            let event = &batch[claim.index];
            workspaces.push(claim.workspace_id);
            keys.push(claim.key);
            organizations.push(event.organization_id.0);
            hashes.push(claim.request_hash);
            event_ids.push(event.id.0);
            created.push(event.created_at);
        }
        let won: Vec<(Uuid, String)> = sqlx::query_as(
            "INSERT INTO idempotency_keys \
                 (workspace_id, key, organization_id, request_hash, event_id, created_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::uuid[], \
                                  $6::timestamptz[]) \
             ON CONFLICT (workspace_id, key) DO UPDATE SET \
                 organization_id = EXCLUDED.organization_id, \
                 request_hash = EXCLUDED.request_hash, \
                 event_id = EXCLUDED.event_id, \
                 created_at = EXCLUDED.created_at \
             WHERE idempotency_keys.created_at <= \
                   EXCLUDED.created_at - $7::bigint * interval '1 microsecond' \
             RETURNING workspace_id, key",
        )
        .bind(&workspaces)
        .bind(&keys)
        .bind(&organizations)
        .bind(&hashes)
        .bind(&event_ids)
        .bind(&created)
        .bind(window_micros())
        .fetch_all(&mut **tx)
        .await?;
        let won: std::collections::HashSet<(Uuid, &str)> =
            won.iter().map(|(w, k)| (*w, k.as_str())).collect();

        let mut lost_workspaces = Vec::new();
        let mut lost_keys = Vec::new();
        for &i in &open {
            let claim = &claims[i];
            if won.contains(&(claim.workspace_id, claim.key)) {
                results[i] = Some(ClaimResult::Won);
            } else {
                lost_workspaces.push(claim.workspace_id);
                lost_keys.push(claim.key);
            }
        }
        if lost_keys.is_empty() {
            continue;
        }
        let rows = sqlx::query(&format!(
            "SELECT i.workspace_id AS claim_workspace_id, i.key AS claim_key, i.request_hash, \
                    {EVENT_COLUMNS} \
             FROM UNNEST($1::uuid[], $2::text[]) AS c(workspace_id, key) \
             JOIN idempotency_keys i ON i.workspace_id = c.workspace_id AND i.key = c.key \
             JOIN events e ON e.id = i.event_id"
        ))
        .bind(&lost_workspaces)
        .bind(&lost_keys)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let workspace: Uuid = row.try_get("claim_workspace_id")?;
            let key: String = row.try_get("claim_key")?;
            let existing = ClaimResult::Existing {
                request_hash: row.try_get("request_hash")?,
                event: Box::new(event_record(&row)?),
            };
            if let Some(i) = open
                .iter()
                .copied()
                .find(|&i| claims[i].workspace_id == workspace && claims[i].key == key)
            {
                results[i] = Some(existing);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.ok_or(sqlx::Error::RowNotFound))
        .collect()
}

/// Inserts the chosen events and their rule events with one multi-row statement each.
async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[NewEvent],
    indices: &[usize],
) -> Result<(), sqlx::Error> {
    if indices.is_empty() {
        return Ok(());
    }
    let n = indices.len();
    let (mut ids, mut orgs, mut workspaces) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut names, mut resources, mut resource_ids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut payloads, mut emails, mut created_by) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut created_at, mut statuses, mut totals, mut completed_at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut rules = RuleEventColumns::default();
    for &i in indices {
        let e = &batch[i];
        let record = batch::inserted_record(e);
        ids.push(e.id.0);
        orgs.push(e.organization_id.0);
        workspaces.push(e.workspace_id.0);
        names.push(e.event.as_str());
        resources.push(e.resource.as_str());
        resource_ids.push(e.resource_id.as_deref());
        payloads.push(Json(&e.payload));
        emails.push(e.contact_email.as_deref());
        created_by.push(e.created_by.as_str());
        created_at.push(e.created_at);
        statuses.push(e.status.as_str());
        totals.push(i32::try_from(record.total_rules).unwrap_or(i32::MAX));
        completed_at.push(record.completed_at);
        for r in &e.rule_events {
            rules.ids.push(r.id.0);
            rules.orgs.push(e.organization_id.0);
            rules.workspaces.push(e.workspace_id.0);
            rules.events.push(e.id.0);
            rules.rules.push(r.rule_id.0);
            rules.connections.push(r.connection_id.0);
            rules.types.push(r.integration_type.as_str());
            rules.created_by.push(e.created_by.as_str());
            rules.created_at.push(e.created_at);
        }
    }
    sqlx::query(
        "INSERT INTO events (id, organization_id, workspace_id, event, resource, resource_id, \
             payload, contact_email, created_by, created_at, status, total_rules, completed_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
             $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], \
             $12::int4[], $13::timestamptz[])",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&workspaces)
    .bind(&names)
    .bind(&resources)
    .bind(&resource_ids)
    .bind(&payloads)
    .bind(&emails)
    .bind(&created_by)
    .bind(&created_at)
    .bind(&statuses)
    .bind(&totals)
    .bind(&completed_at)
    .execute(&mut **tx)
    .await?;
    if rules.ids.is_empty() {
        return Ok(());
    }
    // New deliveries are due at once: next_attempt_at = created_at.
    sqlx::query(
        "INSERT INTO rule_events (id, organization_id, workspace_id, event_id, rule_id, \
             connection_id, integration_type, status, next_attempt_at, created_by, created_at) \
         SELECT id, organization_id, workspace_id, event_id, rule_id, connection_id, \
                integration_type, 'pending', created_at, created_by, created_at \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], \
                     $7::text[], $8::text[], $9::timestamptz[]) \
              AS r(id, organization_id, workspace_id, event_id, rule_id, connection_id, \
                   integration_type, created_by, created_at)",
    )
    .bind(&rules.ids)
    .bind(&rules.orgs)
    .bind(&rules.workspaces)
    .bind(&rules.events)
    .bind(&rules.rules)
    .bind(&rules.connections)
    .bind(&rules.types)
    .bind(&rules.created_by)
    .bind(&rules.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Column arrays for the multi-row rule event insert.
#[derive(Default)]
struct RuleEventColumns<'a> {
    ids: Vec<Uuid>,
    orgs: Vec<Uuid>,
    workspaces: Vec<Uuid>,
    events: Vec<Uuid>,
    rules: Vec<Uuid>,
    connections: Vec<Uuid>,
    types: Vec<&'a str>,
    created_by: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
}

fn window_micros() -> i64 {
    IDEMPOTENCY_WINDOW
        .num_microseconds()
        .expect("a 24 h window fits in i64 microseconds")
}

/// True for errors PostgreSQL raises to break a deadlock or a serialization conflict.
fn is_transient(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Maps a unique violation on a known constraint to `Conflict`; everything else stays a database error.
fn conflict_or(err: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let what = match db.constraint() {
                Some("workspaces_name_unique") => Some("workspace_name"),
                Some("publishable_keys_public_key_unique") => Some("public_key"),
                Some("publishable_keys_one_active") => Some("active_publishable_key"),
                Some("machine_keys_pkey") => Some("access_key"),
                _ => None,
            };
            if let Some(what) = what {
                return StorageError::Conflict(what);
            }
        }
    }
    StorageError::Database(err)
}

fn event_record(row: &PgRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: EventId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event: row.try_get("event")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        status: decode_status(row.try_get("status")?)?,
        total_rules: i64::from(row.try_get::<i32, _>("total_rules")?),
        completed_count: i64::from(row.try_get::<i32, _>("completed_count")?),
        failed_count: i64::from(row.try_get::<i32, _>("failed_count")?),
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

fn workspace(row: &PgRow) -> Result<Workspace, sqlx::Error> {
    Ok(Workspace {
        id: WorkspaceId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn publishable_key(row: &PgRow) -> Result<PublishableKey, sqlx::Error> {
    Ok(PublishableKey {
        id: row.try_get::<Uuid, _>("id")?.into(),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        public_key: row.try_get("public_key")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

const WORKSPACE_COLUMNS: &str = "id, organization_id, name, description, created_at, updated_at";
const KEY_COLUMNS: &str = "id, organization_id, workspace_id, public_key, name, created_at";

async fn insert_workspace(
    tx: &mut Transaction<'static, Postgres>,
    w: &Workspace,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workspaces (id, organization_id, name, name_key, description, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(w.id.0)
    .bind(w.organization_id.0)
    .bind(&w.name)
    .bind(w.name.to_lowercase())
    .bind(&w.description)
    .bind(w.created_at)
    .bind(w.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_publishable_key(
    tx: &mut Transaction<'static, Postgres>,
    k: &PublishableKey,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO publishable_keys (id, organization_id, workspace_id, public_key, name, \
             active, created_at) VALUES ($1, $2, $3, $4, $5, true, $6)",
    )
    .bind(k.id.0)
    .bind(k.organization_id.0)
    .bind(k.workspace_id.0)
    .bind(&k.public_key)
    .bind(&k.name)
    .bind(k.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        let applied: Vec<i64> = if has_table {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
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
                .fetch_one(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.0)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&mut *tx)
            .await?;
        insert_workspace(&mut tx, workspace)
            .await
            .map_err(conflict_or)?;
        sqlx::query(
            "INSERT INTO machine_keys (access_key, organization_id, secret_ciphertext, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&machine_key.access_key)
        .bind(machine_key.organization_id.0)
        .bind(&machine_key.secret_ciphertext)
        .bind(machine_key.created_at)
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
             WHERE access_key = $1 AND revoked_at IS NULL",
        )
        .bind(access_key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(MachineKey {
            access_key: row.try_get("access_key")?,
            organization_id: OrganizationId(row.try_get("organization_id")?),
            secret_ciphertext: row.try_get("secret_ciphertext")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    async fn find_publishable_key(&self, public_key: &str) -> Result<Option<PublishableKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM publishable_keys WHERE public_key = $1 AND active"
        ))
        .bind(public_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(publishable_key).transpose()?)
    }

    async fn create_workspace(&self, workspace: &Workspace, key: &PublishableKey) -> Result<()> {
        let mut tx = self.pool.begin().await?;
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
             WHERE organization_id = $1 AND ($2::uuid IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(org.0)
        .bind(page.before)
        .bind(page.limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(workspace).collect::<Result<_, _>>()?)
    }

    async fn get_workspace(
        &self,
        org: OrganizationId,
        id: WorkspaceId,
    ) -> Result<Option<Workspace>> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
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
            "UPDATE workspaces SET name = $3, name_key = $4, description = $5, updated_at = $6 \
             WHERE id = $1 AND organization_id = $2 RETURNING {WORKSPACE_COLUMNS}"
        ))
        .bind(id.0)
        .bind(org.0)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(description)
        .bind(updated_at)
        .fetch_optional(&self.pool)
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
             WHERE workspace_id = $1 AND organization_id = $2 AND active"
        ))
        .bind(workspace.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        // Locking the workspace row serializes concurrent rotations of one workspace, so the
        // second deactivates the first's new key instead of colliding with it.
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM workspaces WHERE id = $1 AND organization_id = $2 FOR UPDATE",
        )
        .bind(workspace.0)
        .bind(org.0)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE publishable_keys SET active = false, deactivated_at = $3 \
             WHERE workspace_id = $1 AND organization_id = $2 AND active",
        )
        .bind(workspace.0)
        .bind(org.0)
        .bind(new.created_at)
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
        let mut attempt = 0;
        loop {
            match self.try_insert_events(batch).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(err) if is_transient(&err) && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %err, "event batch aborted by the database; retrying");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn get_event(&self, org: OrganizationId, id: EventId) -> Result<Option<EventRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1 AND e.organization_id = $2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(event_record).transpose()?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
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
        let options = (*self.pool.connect_options()).clone();
        Ok(changes::listen(options, &self.alive).await?)
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
