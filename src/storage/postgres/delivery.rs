//! PostgreSQL: the delivery queue (claims, finished attempts, parking, queue statistics) and
//! worker heartbeats.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::rules::{
    CONNECTION_COLUMNS, RULE_COLUMNS, announce, connection_prefixed, rule_prefixed,
};
use super::{PostgresStore, TRANSIENT_RETRIES, is_transient};
use crate::domain::{
    AttemptRecord, CallRecord, ClaimedDelivery, ConnectionId, Disposition, EventId, OrganizationId,
    RuleEventId, RuleId, WorkspaceId,
};
use crate::storage::delivery::{self, ROLLUP_COUNTS, ROLLUP_STATUS};
use crate::storage::{QueueStats, Result};

/// The claim, in one statement (one round trip, committed on return):
/// 1. `due` and `expired` lock candidates in due order, skipping rows another claim holds (so two
///    claims never take one row). They are separate scans so each walks its own partial index in
///    order instead of sorting the whole backlog; `MATERIALIZED` keeps the locking where it is.
/// 2. `ranked` numbers candidates per connection (window functions cannot share a query level
///    with `FOR UPDATE`), `chosen` keeps at most `per_connection` of each, taking connections in
///    turn (the oldest due of each connection, then the second oldest of each, …) so one backlog
///    cannot hold back another connection's delivery.
/// 3. `claimed` leases them; `started` marks their events started.
/// 4. The result joins the event, the rule and the connection (as of the statement's snapshot;
///    both may be gone: LEFT JOIN).
///
/// $1 now, $2 lease_until, $3 owner, $4 candidate window, $5 limit, $6 per_connection,
/// $7 connections to leave alone.
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS MATERIALIZED ( \
             SELECT id, connection_id, next_attempt_at AS due_at FROM rule_events \
             WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1 \
               AND connection_id <> ALL($7) \
             ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED \
         ), expired AS MATERIALIZED ( \
             SELECT id, connection_id, lease_until AS due_at FROM rule_events \
             WHERE status = 'processing' AND lease_until < $1 \
               AND connection_id <> ALL($7) \
             ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED \
         ), ranked AS ( \
             SELECT id, due_at, \
                    row_number() OVER (PARTITION BY connection_id ORDER BY due_at, id) AS place \
             FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS candidates \
         ), chosen AS ( \
             SELECT id, due_at FROM ranked WHERE place <= $6 ORDER BY place, due_at, id LIMIT $5 \
         ), claimed AS ( \
             UPDATE rule_events r SET status = 'processing', lease_until = $2, lease_owner = $3, \
                 started_at = COALESCE(r.started_at, $1) \
             FROM chosen WHERE r.id = chosen.id \
             RETURNING r.id, r.organization_id, r.workspace_id, r.event_id, r.rule_id, \
                 r.connection_id, r.attempt_count, r.throttled_count, r.lease_until, chosen.due_at \
         ), started AS ( \
             UPDATE events e SET started_at = COALESCE(e.started_at, $1), \
                 status = CASE WHEN e.status = 'pending' THEN 'processing' ELSE e.status END \
             WHERE e.id IN (SELECT event_id FROM claimed) \
               AND (e.started_at IS NULL OR e.status = 'pending') \
         ) \
         SELECT c.id, c.organization_id, c.workspace_id, c.event_id, c.rule_id, c.connection_id, \
                c.attempt_count, c.throttled_count, c.lease_until, \
                e.event AS event_name, e.created_at AS event_created_at, e.resource AS event_resource, \
                e.resource_id AS event_resource_id, e.payload, {rule}, {connection} \
         FROM claimed c \
         JOIN events e ON e.id = c.event_id \
         LEFT JOIN rules ru ON ru.id = c.rule_id \
         LEFT JOIN connections cn ON cn.id = c.connection_id \
         ORDER BY c.due_at, c.id",
        rule = delivery::prefixed(RULE_COLUMNS, "ru", "ru_"),
        connection = delivery::prefixed(CONNECTION_COLUMNS, "cn", "cn_"),
    )
});

/// Inserts the attempts and applies the dispositions of the items that hold their lease, then
/// locks the events those touched in id order (so concurrent batches on shared events queue
/// instead of deadlocking, and the roll-up that follows, in a new snapshot, sees every
/// committed sibling). Returns the rule events that changed.
const FINISH_SQL: &str = "WITH inserted AS ( \
         INSERT INTO attempts (id, organization_id, workspace_id, event_id, rule_event_id, \
             attempt_number, started_at, duration_ms, outcome_code, http_status, error, calls, \
             is_test) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
             $6::int4[], $7::timestamptz[], $8::int8[], $9::text[], $10::int4[], $11::text[], \
             $12::jsonb[], $13::bool[]) \
     ), updated AS ( \
         UPDATE rule_events r SET status = u.status, \
             attempt_count = r.attempt_count + 1, \
             throttled_count = r.throttled_count + CASE WHEN u.throttled THEN 1 ELSE 0 END, \
             next_attempt_at = u.next_attempt_at, \
             completed_at = CASE WHEN u.final THEN $20::timestamptz END, \
             lease_until = NULL, lease_owner = NULL, last_error = u.last_error \
         FROM UNNEST($14::uuid[], $15::text[], $16::timestamptz[], $17::bool[], $18::bool[], \
                     $19::text[]) AS u(id, status, next_attempt_at, throttled, final, last_error) \
         WHERE r.id = u.id AND r.status = 'processing' AND r.lease_owner = $21 \
         RETURNING r.id, r.event_id \
     ), locked AS MATERIALIZED ( \
         SELECT e.id FROM events e WHERE e.id IN (SELECT event_id FROM updated) \
         ORDER BY e.id FOR UPDATE \
     ) \
     SELECT u.id, u.event_id, (SELECT count(*) FROM locked) AS locked FROM updated u";

pub(super) static ROLLUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE events e SET completed_count = s.completed, failed_count = s.failed, \
             status = {ROLLUP_STATUS}, \
             completed_at = CASE WHEN s.final = s.total THEN $2::timestamptz END \
         FROM ({counts}) AS s WHERE e.id = s.event_id",
        counts = ROLLUP_COUNTS.replace("{events}", "event_id = ANY($1)"),
    )
});

fn claimed(row: &PgRow) -> Result<ClaimedDelivery, sqlx::Error> {
    let rule_id: Option<Uuid> = row.try_get("ru_id")?;
    let connection_id: Option<Uuid> = row.try_get("cn_id")?;
    Ok(ClaimedDelivery {
        rule_event_id: RuleEventId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event_id: EventId(row.try_get("event_id")?),
        rule_id: RuleId(row.try_get("rule_id")?),
        connection_id: ConnectionId(row.try_get("connection_id")?),
        attempt_count: i64::from(row.try_get::<i32, _>("attempt_count")?),
        throttled_count: i64::from(row.try_get::<i32, _>("throttled_count")?),
        lease_until: row.try_get("lease_until")?,
        event: row.try_get("event_name")?,
        event_created_at: row.try_get("event_created_at")?,
        resource: row.try_get("event_resource")?,
        resource_id: row.try_get("event_resource_id")?,
        payload: row
            .try_get::<Option<Json<serde_json::Value>>, _>("payload")?
            .map(|json| json.0),
        rule: rule_id.map(|_| rule_prefixed(row, "ru_")).transpose()?,
        connection: connection_id
            .map(|_| connection_prefixed(row, "cn_"))
            .transpose()?,
    })
}

/// Column arrays for the multi-row attempt insert and rule event update.
#[derive(Default)]
struct FinishColumns<'a> {
    ids: Vec<Uuid>,
    orgs: Vec<Uuid>,
    workspaces: Vec<Uuid>,
    events: Vec<Uuid>,
    rule_events: Vec<Uuid>,
    numbers: Vec<i32>,
    started: Vec<DateTime<Utc>>,
    durations: Vec<i64>,
    outcomes: Vec<&'a str>,
    statuses: Vec<Option<i32>>,
    errors: Vec<Option<&'a str>>,
    calls: Vec<Json<&'a [CallRecord]>>,
    tests: Vec<bool>,
    // Only the items that apply a disposition.
    target_ids: Vec<Uuid>,
    target_statuses: Vec<&'static str>,
    target_next: Vec<Option<DateTime<Utc>>>,
    target_throttled: Vec<bool>,
    target_final: Vec<bool>,
    target_errors: Vec<Option<&'a str>>,
}

impl<'a> FinishColumns<'a> {
    fn new(items: &'a [(AttemptRecord, Disposition)]) -> Self {
        let mut columns = Self::default();
        let applies = delivery::first_per_rule_event(items);
        for ((a, disposition), applies) in items.iter().zip(applies) {
            columns.ids.push(a.id.0);
            columns.orgs.push(a.organization_id.0);
            columns.workspaces.push(a.workspace_id.0);
            columns.events.push(a.event_id.0);
            columns.rule_events.push(a.rule_event_id.0);
            columns
                .numbers
                .push(i32::try_from(a.attempt_number).unwrap_or(i32::MAX));
            columns.started.push(a.started_at);
            columns.durations.push(a.duration_ms);
            columns.outcomes.push(a.outcome_code.as_str());
            columns.statuses.push(a.http_status.map(i32::from));
            columns.errors.push(a.error.as_deref());
            columns.calls.push(Json(a.calls.as_slice()));
            columns.tests.push(a.is_test);
            if applies {
                let t = delivery::transition(disposition);
                columns.target_ids.push(a.rule_event_id.0);
                columns.target_statuses.push(t.status);
                columns.target_next.push(t.next_attempt_at);
                columns.target_throttled.push(t.throttled);
                columns.target_final.push(t.is_final);
                columns.target_errors.push(delivery::last_error(a, &t));
            }
        }
        columns
    }
}

impl PostgresStore {
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
        let window = delivery::candidate_window(limit, per_connection);
        let exclude: Vec<uuid::Uuid> = exclude.iter().map(|c| c.0).collect();
        let mut attempt = 0;
        loop {
            let rows = sqlx::query(&CLAIM_SQL)
                .bind(now)
                .bind(lease_until)
                .bind(owner)
                .bind(window)
                .bind(limit)
                .bind(per_connection)
                .bind(&exclude)
                .fetch_all(&self.pool)
                .await;
            match rows {
                Ok(rows) => return Ok(rows.iter().map(claimed).collect::<Result<_, _>>()?),
                // Two claims marking the same fresh events started can deadlock; nothing was
                // claimed by the aborted one.
                Err(err) if is_transient(&err) && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %err, "claim aborted by the database; retrying");
                }
                Err(err) => return Err(err.into()),
            }
        }
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
        let columns = FinishColumns::new(items);
        let mut attempt = 0;
        loop {
            match self.try_finish(&columns, owner, now).await {
                Ok(changed) => {
                    let applies = delivery::first_per_rule_event(items);
                    return Ok(items
                        .iter()
                        .zip(applies)
                        .map(|((a, _), applies)| applies && changed.contains(&a.rule_event_id.0))
                        .collect());
                }
                Err(err) if is_transient(&err) && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %err, "attempt batch aborted by the database; retrying");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// One try of `finish`: the rule events whose disposition applied.
    async fn try_finish(
        &self,
        c: &FinishColumns<'_>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(FINISH_SQL)
            .bind(&c.ids)
            .bind(&c.orgs)
            .bind(&c.workspaces)
            .bind(&c.events)
            .bind(&c.rule_events)
            .bind(&c.numbers)
            .bind(&c.started)
            .bind(&c.durations)
            .bind(&c.outcomes)
            .bind(&c.statuses)
            .bind(&c.errors)
            .bind(&c.calls)
            .bind(&c.tests)
            .bind(&c.target_ids)
            .bind(&c.target_statuses)
            .bind(&c.target_next)
            .bind(&c.target_throttled)
            .bind(&c.target_final)
            .bind(&c.target_errors)
            .bind(now)
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?;
        let mut changed = std::collections::HashSet::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            changed.insert(row.try_get::<Uuid, _>("id")?);
            events.push(row.try_get::<Uuid, _>("event_id")?);
        }
        if !events.is_empty() {
            events.sort_unstable();
            events.dedup();
            sqlx::query(&ROLLUP_SQL)
                .bind(&events)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(super) async fn resume(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE rule_events SET next_attempt_at = $3 \
             WHERE connection_id = $1 AND organization_id = $2 \
               AND status = 'retrying' AND next_attempt_at IS NULL",
        )
        .bind(connection.0)
        .bind(org.0)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn park(
        &self,
        connection: ConnectionId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "UPDATE connections SET active = false, inactive_reason = $2, updated_at = $3 \
             WHERE id = $1 AND active RETURNING workspace_id",
        )
        .bind(connection.0)
        .bind(reason)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(false);
        };
        announce(&mut tx, WorkspaceId(workspace)).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn beat(&self, node_id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker_nodes (node_id, heartbeat_at) VALUES ($1, $2) \
             ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
        )
        .bind(node_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn nodes_since(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT node_id FROM worker_nodes WHERE heartbeat_at >= $1 ORDER BY node_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    pub(super) async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE rule_events SET lease_until = $2 \
             WHERE status = 'processing' AND lease_owner = $1 AND lease_until < $2",
        )
        .bind(owner)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn forget_node(&self, node_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM worker_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
        let (due, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(due_at) FROM ( \
                 SELECT next_attempt_at AS due_at FROM rule_events \
                 WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1 \
                 UNION ALL \
                 SELECT lease_until FROM rule_events \
                 WHERE status = 'processing' AND lease_until < $1) AS q",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            due,
            oldest_due_age_seconds: delivery::age_seconds(now, oldest),
        })
    }
}
