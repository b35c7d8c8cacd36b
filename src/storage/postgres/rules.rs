//! PostgreSQL: connections and rules, and the `pg_notify` that announces each change to them.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use crate::domain::{
    Connection, ConnectionDeletion, ConnectionId, OrganizationId, Rule, RuleFilter, RuleId,
    WorkspaceId,
};
use crate::storage::changes::CHANNEL;
use crate::storage::{PageRequest, Result, StorageError};

pub(super) const CONNECTION_COLUMNS: &str = "id, organization_id, workspace_id, integration_type, name, \
     api_url, api_key_ciphertext, rate_limit_per_second, hidden, active, inactive_reason, \
     created_by, created_at, updated_at";
pub(super) const RULE_COLUMNS: &str = "id, organization_id, workspace_id, connection_id, integration_type, \
     event, resource, resource_id, metadata, conditions, active, hidden, created_by, created_at, \
     updated_at";

/// Queues the change notification; PostgreSQL delivers it to every listener when (and only if)
/// the transaction commits.
pub(super) async fn announce(
    tx: &mut Transaction<'static, Postgres>,
    workspace: WorkspaceId,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(workspace.0.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A foreign key violation means the referenced row is missing for this tenant: `NotFound(what)`.
fn missing_or(err: sqlx::Error, what: &'static str) -> StorageError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StorageError::NotFound(what),
        _ => StorageError::Database(err),
    }
}

fn connection(row: &PgRow) -> Result<Connection, sqlx::Error> {
    connection_prefixed(row, "")
}

/// A connection whose columns are named `<prefix><column>` (joined into another row).
pub(super) fn connection_prefixed(row: &PgRow, prefix: &str) -> Result<Connection, sqlx::Error> {
    let c = |name: &str| format!("{prefix}{name}");
    let rate: Option<i64> = row.try_get(c("rate_limit_per_second").as_str())?;
    Ok(Connection {
        id: ConnectionId(row.try_get(c("id").as_str())?),
        organization_id: OrganizationId(row.try_get(c("organization_id").as_str())?),
        workspace_id: WorkspaceId(row.try_get(c("workspace_id").as_str())?),
        integration_type: row.try_get(c("integration_type").as_str())?,
        name: row.try_get(c("name").as_str())?,
        api_url: row.try_get(c("api_url").as_str())?,
        api_key_ciphertext: row.try_get(c("api_key_ciphertext").as_str())?,
        rate_limit_per_second: rate
            .map(|r| {
                u32::try_from(r)
                    .map_err(|_| sqlx::Error::Decode(format!("rate limit {r} out of range").into()))
            })
            .transpose()?,
        hidden: row.try_get(c("hidden").as_str())?,
        active: row.try_get(c("active").as_str())?,
        inactive_reason: row.try_get(c("inactive_reason").as_str())?,
        created_by: row.try_get(c("created_by").as_str())?,
        created_at: row.try_get(c("created_at").as_str())?,
        updated_at: row.try_get(c("updated_at").as_str())?,
    })
}

fn rule(row: &PgRow) -> Result<Rule, sqlx::Error> {
    rule_prefixed(row, "")
}

/// A rule whose columns are named `<prefix><column>` (joined into another row).
pub(super) fn rule_prefixed(row: &PgRow, prefix: &str) -> Result<Rule, sqlx::Error> {
    let c = |name: &str| format!("{prefix}{name}");
    Ok(Rule {
        id: RuleId(row.try_get(c("id").as_str())?),
        organization_id: OrganizationId(row.try_get(c("organization_id").as_str())?),
        workspace_id: WorkspaceId(row.try_get(c("workspace_id").as_str())?),
        connection_id: ConnectionId(row.try_get(c("connection_id").as_str())?),
        integration_type: row.try_get(c("integration_type").as_str())?,
        event: row.try_get(c("event").as_str())?,
        resource: row.try_get(c("resource").as_str())?,
        resource_id: row.try_get(c("resource_id").as_str())?,
        metadata: row
            .try_get::<Json<serde_json::Value>, _>(c("metadata").as_str())?
            .0,
        conditions: row
            .try_get::<Json<serde_json::Value>, _>(c("conditions").as_str())?
            .0,
        active: row.try_get(c("active").as_str())?,
        hidden: row.try_get(c("hidden").as_str())?,
        created_by: row.try_get(c("created_by").as_str())?,
        created_at: row.try_get(c("created_at").as_str())?,
        updated_at: row.try_get(c("updated_at").as_str())?,
    })
}

impl PostgresStore {
    pub(super) async fn insert_connection(&self, c: &Connection) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO connections (id, organization_id, workspace_id, integration_type, name, \
                 api_url, api_key_ciphertext, rate_limit_per_second, hidden, active, \
                 inactive_reason, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.0)
        .bind(c.organization_id.0)
        .bind(c.workspace_id.0)
        .bind(&c.integration_type)
        .bind(&c.name)
        .bind(&c.api_url)
        .bind(&c.api_key_ciphertext)
        .bind(c.rate_limit_per_second.map(i64::from))
        .bind(c.hidden)
        .bind(c.active)
        .bind(&c.inactive_reason)
        .bind(&c.created_by)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| missing_or(e, "workspace"))?;
        announce(&mut tx, c.workspace_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn select_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> Result<Option<Connection>> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(connection).transpose()?)
    }

    pub(super) async fn select_connections(
        &self,
        org: OrganizationId,
        workspace: Option<WorkspaceId>,
        page: PageRequest,
    ) -> Result<Vec<Connection>> {
        // Only the filters that are set, so the planner sees which index fits.
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE organization_id = "
        ));
        query.push_bind(org.0);
        if let Some(workspace) = workspace {
            query.push(" AND workspace_id = ").push_bind(workspace.0);
        }
        page_clause(&mut query, page);
        let rows = query.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(connection).collect::<Result<_, _>>()?)
    }

    pub(super) async fn replace_connection(
        &self,
        org: OrganizationId,
        c: &Connection,
    ) -> Result<Option<Connection>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE connections SET name = $3, api_url = $4, api_key_ciphertext = $5, \
                 rate_limit_per_second = $6, hidden = $7, active = $8, inactive_reason = $9, \
                 updated_at = $10 \
             WHERE id = $1 AND organization_id = $2 RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(c.id.0)
        .bind(org.0)
        .bind(&c.name)
        .bind(&c.api_url)
        .bind(&c.api_key_ciphertext)
        .bind(c.rate_limit_per_second.map(i64::from))
        .bind(c.hidden)
        .bind(c.active)
        .bind(&c.inactive_reason)
        .bind(c.updated_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let updated = connection(&row)?;
        announce(&mut tx, updated.workspace_id).await?;
        tx.commit().await?;
        Ok(Some(updated))
    }

    pub(super) async fn remove_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        force: bool,
    ) -> Result<ConnectionDeletion> {
        let mut tx = self.pool.begin().await?;
        // The row lock conflicts with the key-share lock a concurrent rule insert takes on its
        // connection, so no rule can start using the connection between the count and the delete.
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "SELECT workspace_id FROM connections WHERE id = $1 AND organization_id = $2 \
             FOR UPDATE",
        )
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(ConnectionDeletion::NotFound);
        };
        let rules: i64 = sqlx::query_scalar("SELECT count(*) FROM rules WHERE connection_id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        if rules > 0 && !force {
            return Ok(ConnectionDeletion::InUse { rules });
        }
        let rules_deleted = sqlx::query("DELETE FROM rules WHERE connection_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        announce(&mut tx, WorkspaceId(workspace)).await?;
        tx.commit().await?;
        Ok(ConnectionDeletion::Deleted {
            rules_deleted: i64::try_from(rules_deleted).unwrap_or(i64::MAX),
        })
    }

    pub(super) async fn mark_connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
        active: bool,
        inactive_reason: Option<&str>,
        updated_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "UPDATE connections SET active = $3, inactive_reason = $4, updated_at = $5 \
             WHERE id = $1 AND organization_id = $2 RETURNING workspace_id",
        )
        .bind(id.0)
        .bind(org.0)
        .bind(active)
        .bind(inactive_reason)
        .bind(updated_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(false);
        };
        announce(&mut tx, WorkspaceId(workspace)).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn insert_rule(&self, r: &Rule) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rules (id, organization_id, workspace_id, connection_id, \
                 integration_type, event, resource, resource_id, metadata, conditions, active, \
                 hidden, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(r.id.0)
        .bind(r.organization_id.0)
        .bind(r.workspace_id.0)
        .bind(r.connection_id.0)
        .bind(&r.integration_type)
        .bind(&r.event)
        .bind(&r.resource)
        .bind(&r.resource_id)
        .bind(Json(&r.metadata))
        .bind(Json(&r.conditions))
        .bind(r.active)
        .bind(r.hidden)
        .bind(&r.created_by)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *tx)
        .await
        // A missing workspace fails this too: its connection cannot be in it either.
        .map_err(|e| missing_or(e, "connection"))?;
        announce(&mut tx, r.workspace_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn select_rule(
        &self,
        org: OrganizationId,
        id: RuleId,
    ) -> Result<Option<Rule>> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(rule).transpose()?)
    }

    pub(super) async fn select_rules(
        &self,
        org: OrganizationId,
        filter: &RuleFilter,
        page: PageRequest,
    ) -> Result<Vec<Rule>> {
        // Only the filters that are set, so the planner sees which index fits.
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE organization_id = "
        ));
        query.push_bind(org.0);
        if let Some(workspace) = filter.workspace {
            query.push(" AND workspace_id = ").push_bind(workspace.0);
        }
        if let Some(event) = &filter.event {
            query.push(" AND event = ").push_bind(event.as_str());
        }
        if let Some(resource) = &filter.resource {
            query.push(" AND resource = ").push_bind(resource.as_str());
        }
        if let Some(resource_id) = &filter.resource_id {
            query
                .push(" AND resource_id = ")
                .push_bind(resource_id.as_str());
        }
        page_clause(&mut query, page);
        let rows = query.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(rule).collect::<Result<_, _>>()?)
    }

    pub(super) async fn replace_rule(&self, org: OrganizationId, r: &Rule) -> Result<Option<Rule>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE rules SET connection_id = $3, integration_type = $4, event = $5, \
                 resource = $6, resource_id = $7, metadata = $8, conditions = $9, active = $10, \
                 hidden = $11, updated_at = $12 \
             WHERE id = $1 AND organization_id = $2 RETURNING {RULE_COLUMNS}"
        ))
        .bind(r.id.0)
        .bind(org.0)
        .bind(r.connection_id.0)
        .bind(&r.integration_type)
        .bind(&r.event)
        .bind(&r.resource)
        .bind(&r.resource_id)
        .bind(Json(&r.metadata))
        .bind(Json(&r.conditions))
        .bind(r.active)
        .bind(r.hidden)
        .bind(r.updated_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| missing_or(e, "connection"))?;
        let Some(row) = row else { return Ok(None) };
        let updated = rule(&row)?;
        announce(&mut tx, updated.workspace_id).await?;
        tx.commit().await?;
        Ok(Some(updated))
    }

    pub(super) async fn remove_rule(
        &self,
        org: OrganizationId,
        id: RuleId,
    ) -> Result<Option<Rule>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM rules WHERE id = $1 AND organization_id = $2 RETURNING {RULE_COLUMNS}"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let deleted = rule(&row)?;
        announce(&mut tx, deleted.workspace_id).await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    pub(super) async fn select_workspace_rules(&self, workspace: WorkspaceId) -> Result<Vec<Rule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE workspace_id = $1 ORDER BY id"
        ))
        .bind(workspace.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(rule).collect::<Result<_, _>>()?)
    }
}

/// Appends the keyset page: rows older than `before`, newest first, at most `limit`.
fn page_clause(query: &mut QueryBuilder<'_, Postgres>, page: PageRequest) {
    if let Some(before) = page.before {
        query.push(" AND id < ").push_bind(before);
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(page.limit.max(0));
}
