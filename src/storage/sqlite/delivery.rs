//! SQLite: the delivery queue (claims, finished attempts, parking, queue statistics) and worker
//! heartbeats. Claims and finishes run in `BEGIN IMMEDIATE` on the single writer, so
//! they are serialized against each other (and other processes) without row locks.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::rules::{CONNECTION_COLUMNS, RULE_COLUMNS, connection_prefixed, rule_prefixed};
use super::{SqliteStore, micros, time};
use crate::domain::{
    AttemptRecord, ClaimedDelivery, ConnectionId, Disposition, EventId, OrganizationId,
    RuleEventId, RuleId, WorkspaceId,
};
use crate::storage::delivery::{self, ROLLUP_COUNTS, ROLLUP_STATUS};
use crate::storage::{QueueStats, Result};

/// The rows a claim takes, oldest due first: due rows and expired leases, each scanned in order
/// on its own partial index, then at most `per_connection` (?5) per connection, at most `limit`
/// (?4) in all, none of the connections in ?5 (a JSON array of hex ids). ?1 now, ?2 candidate window. Returns rowids (the cheapest handle for the
/// statements that follow in the same transaction).
const CHOOSE_SQL: &str = "WITH candidates AS ( \
         SELECT * FROM (SELECT rowid AS rid, connection_id, next_attempt_at AS due_at \
                        FROM rule_events \
                        WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?1 \
                          AND connection_id NOT IN (SELECT unhex(value) FROM json_each(?5)) \
                        ORDER BY next_attempt_at LIMIT ?2) \
         UNION ALL \
         SELECT * FROM (SELECT rowid AS rid, connection_id, lease_until AS due_at \
                        FROM rule_events \
                        WHERE status = 'processing' AND lease_until < ?1 \
                          AND connection_id NOT IN (SELECT unhex(value) FROM json_each(?5)) \
                        ORDER BY lease_until LIMIT ?2) \
     ), ranked AS ( \
         SELECT rid, due_at, \
                row_number() OVER (PARTITION BY connection_id ORDER BY due_at, rid) AS place \
         FROM candidates \
     ) \
     SELECT rid FROM (SELECT rid, due_at FROM ranked WHERE place <= ?3 \
                      ORDER BY place, due_at, rid LIMIT ?4) \
     ORDER BY due_at, rid";

/// The chosen rows (a JSON array of rowids, ?1) joined with their event, rule and connection,
/// in the order chosen.
static CLAIMED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.id, r.organization_id, r.workspace_id, r.event_id, r.rule_id, r.connection_id, \
                r.attempt_count, r.throttled_count, r.lease_until, \
                e.event AS event_name, e.created_at AS event_created_at, e.resource AS event_resource, \
                e.resource_id AS event_resource_id, e.payload, {rule}, {connection} \
         FROM json_each(?1) AS j \
         JOIN rule_events r ON r.rowid = j.value \
         JOIN events e ON e.id = r.event_id \
         LEFT JOIN rules ru ON ru.id = r.rule_id \
         LEFT JOIN connections cn ON cn.id = r.connection_id \
         ORDER BY j.key",
        rule = delivery::prefixed(RULE_COLUMNS, "ru", "ru_"),
        connection = delivery::prefixed(CONNECTION_COLUMNS, "cn", "cn_"),
    )
});

/// Rolls events up from their rule events at ?2, in one statement; ?1 is a JSON array of their
/// ids in hex (see [`event_ids`]).
pub(super) static ROLLUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE events AS e SET completed_count = s.completed, failed_count = s.failed, \
             status = {ROLLUP_STATUS}, \
             completed_at = CASE WHEN s.final = s.total THEN ?2 END \
         FROM ({counts}) AS s WHERE e.id = s.event_id",
        counts = ROLLUP_COUNTS.replace(
            "{events}",
            "event_id IN (SELECT unhex(value) FROM json_each(?1))"
        ),
    )
});

/// Event ids as [`ROLLUP_SQL`] takes them: a JSON array of hex strings, each id once.
pub(super) fn event_ids(ids: impl IntoIterator<Item = Uuid>) -> String {
    let mut hex: Vec<String> = ids.into_iter().map(|id| id.simple().to_string()).collect();
    hex.sort_unstable();
    hex.dedup();
    serde_json::Value::from(hex).to_string()
}

pub(super) fn json_value<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

fn claimed(row: &SqliteRow) -> Result<ClaimedDelivery, sqlx::Error> {
    let rule_id: Option<Uuid> = row.try_get("ru_id")?;
    let connection_id: Option<Uuid> = row.try_get("cn_id")?;
    let payload: Option<String> = row.try_get("payload")?;
    Ok(ClaimedDelivery {
        rule_event_id: RuleEventId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event_id: EventId(row.try_get("event_id")?),
        rule_id: RuleId(row.try_get("rule_id")?),
        connection_id: ConnectionId(row.try_get("connection_id")?),
        attempt_count: row.try_get("attempt_count")?,
        throttled_count: row.try_get("throttled_count")?,
        lease_until: time(row, "lease_until")?,
        event: row.try_get("event_name")?,
        event_created_at: time(row, "event_created_at")?,
        resource: row.try_get("event_resource")?,
        resource_id: row.try_get("event_resource_id")?,
        payload: payload.as_deref().map(json_value).transpose()?,
        rule: rule_id.map(|_| rule_prefixed(row, "ru_")).transpose()?,
        connection: connection_id
            .map(|_| connection_prefixed(row, "cn_"))
            .transpose()?,
    })
}

/// A JSON array of integers, for `json_each` (one statement text whatever the count).
fn json_array(values: &[i64]) -> String {
    let items: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// Appends one attempt to history.
pub(super) async fn insert_attempt(
    tx: &mut Transaction<'static, Sqlite>,
    a: &AttemptRecord,
) -> Result<(), sqlx::Error> {
    let calls =
        serde_json::to_string(&a.calls).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    sqlx::query(
        "INSERT INTO attempts (id, organization_id, workspace_id, event_id, rule_event_id, \
             attempt_number, started_at, duration_ms, outcome_code, http_status, error, calls, \
             is_test) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .bind(a.id.0)
    .bind(a.organization_id.0)
    .bind(a.workspace_id.0)
    .bind(a.event_id.0)
    .bind(a.rule_event_id.0)
    .bind(a.attempt_number)
    .bind(micros(a.started_at))
    .bind(a.duration_ms)
    .bind(a.outcome_code.as_str())
    .bind(a.http_status.map(i64::from))
    .bind(&a.error)
    .bind(calls)
    .bind(a.is_test)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies a disposition if the lease is still `owner`'s; the rule event's event when it did.
async fn apply_disposition(
    tx: &mut Transaction<'static, Sqlite>,
    a: &AttemptRecord,
    disposition: &Disposition,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let t = delivery::transition(disposition);
    sqlx::query_scalar(
        "UPDATE rule_events SET status = ?3, attempt_count = attempt_count + 1, \
             throttled_count = throttled_count + ?4, next_attempt_at = ?5, completed_at = ?6, \
             lease_until = NULL, lease_owner = NULL, last_error = ?7 \
         WHERE id = ?1 AND status = 'processing' AND lease_owner = ?2 \
         RETURNING event_id",
    )
    .bind(a.rule_event_id.0)
    .bind(owner)
    .bind(t.status)
    .bind(i64::from(t.throttled))
    .bind(t.next_attempt_at.map(micros))
    .bind(t.is_final.then(|| micros(now)))
    .bind(delivery::last_error(a, &t))
    .fetch_optional(&mut **tx)
    .await
}

impl SqliteStore {
    pub(super) async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        per_connection: i64,
        exclude: &[ConnectionId],
    ) -> Result<Vec<ClaimedDelivery>> {
        if limit <= 0 || per_connection <= 0 {
            return Ok(Vec::new());
        }
        let exclude = serde_json::Value::from(
            exclude
                .iter()
                .map(|c| c.0.simple().to_string())
                .collect::<Vec<_>>(),
        )
        .to_string();
        let mut tx = self.begin_write().await?;
        let chosen: Vec<i64> = sqlx::query_scalar(CHOOSE_SQL)
            .bind(micros(now))
            .bind(delivery::candidate_window(limit, per_connection))
            .bind(per_connection)
            .bind(limit)
            .bind(&exclude)
            .fetch_all(&mut *tx)
            .await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let rowids = json_array(&chosen);
        sqlx::query(
            "UPDATE rule_events SET status = 'processing', lease_until = ?2, lease_owner = ?3, \
                 started_at = COALESCE(started_at, ?4) \
             WHERE rowid IN (SELECT value FROM json_each(?1))",
        )
        .bind(&rowids)
        .bind(micros(lease_until))
        .bind(owner)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE events SET started_at = COALESCE(started_at, ?2), \
                 status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
             WHERE id IN (SELECT event_id FROM rule_events \
                          WHERE rowid IN (SELECT value FROM json_each(?1))) \
               AND (started_at IS NULL OR status = 'pending')",
        )
        .bind(&rowids)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(&CLAIMED_SQL)
            .bind(&rowids)
            .fetch_all(&mut *tx)
            .await?;
        let claims = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(claims)
    }

    pub(super) async fn finish(
        &self,
        items: &[(AttemptRecord, Disposition)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let applies = delivery::first_per_rule_event(items);
        let mut tx = self.begin_write().await?;
        let mut applied = Vec::with_capacity(items.len());
        let mut events = Vec::new();
        for ((attempt, disposition), applies) in items.iter().zip(applies) {
            insert_attempt(&mut tx, attempt).await?;
            let event = if applies {
                apply_disposition(&mut tx, attempt, disposition, owner, now).await?
            } else {
                None
            };
            applied.push(event.is_some());
            events.extend(event);
        }
        if !events.is_empty() {
            sqlx::query(&ROLLUP_SQL)
                .bind(event_ids(events))
                .bind(micros(now))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    pub(super) async fn resume(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE rule_events SET next_attempt_at = ?3 \
             WHERE connection_id = ?1 AND organization_id = ?2 \
               AND status = 'retrying' AND next_attempt_at IS NULL",
        )
        .bind(connection.0)
        .bind(org.0)
        .bind(micros(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn park(
        &self,
        connection: ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "UPDATE connections SET active = 0, inactive_reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND active = 1 RETURNING workspace_id",
        )
        .bind(connection.0)
        .bind(reason)
        .bind(micros(now))
        .fetch_optional(&self.writer)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(false);
        };
        self.announce(WorkspaceId(workspace));
        Ok(true)
    }

    pub(super) async fn beat(&self, node_id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker_nodes (node_id, heartbeat_at) VALUES (?1, ?2) \
             ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(node_id)
        .bind(micros(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub(super) async fn nodes_since(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT node_id FROM worker_nodes WHERE heartbeat_at >= ?1 ORDER BY node_id",
        )
        .bind(micros(since))
        .fetch_all(&self.reader)
        .await?)
    }

    pub(super) async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE rule_events SET lease_until = ?2 \
             WHERE status = 'processing' AND lease_owner = ?1 AND lease_until < ?2",
        )
        .bind(owner)
        .bind(micros(until))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn forget_node(&self, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM worker_nodes WHERE node_id = ?1")
            .bind(node_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
        let (due, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(due_at) FROM ( \
                 SELECT next_attempt_at AS due_at FROM rule_events \
                 WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?1 \
                 UNION ALL \
                 SELECT lease_until FROM rule_events \
                 WHERE status = 'processing' AND lease_until < ?1)",
        )
        .bind(micros(now))
        .fetch_one(&self.reader)
        .await?;
        let oldest = oldest.map(super::from_micros).transpose()?;
        Ok(QueueStats {
            due,
            oldest_due_age_seconds: delivery::age_seconds(now, oldest),
        })
    }
}
