//! PostgreSQL: what support reads and does — event lists, payloads, manual retry and cancel,
//! replay, and Send Test Event's record. Writes lock the rule events they change (`FOR UPDATE`,
//! in id order) before rolling their events up, the order the delivery finish takes too, and
//! announce due work on the wake-up channel in the same transaction.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::delivery::ROLLUP_SQL;
use super::history::{RULE_EVENT_COLUMNS, rule_event_record};
use super::{
    EVENT_COLUMNS, PostgresStore, TRANSIENT_RETRIES, event_record, insert_rows, is_transient,
};
use crate::domain::{EventId, EventRecord, OrganizationId};
use crate::storage::operations::{
    self, Bind, EventFilter, Manual, Named, REPLAY_STATUS, ReplayFilter, Replayed, RetryVerdict,
    TEST_CREATED_BY, TestDelivery,
};
use crate::storage::{PageRequest, Result, RuleEventRecord, decode_status};

/// The rule event of event $1 in organization $2 named by its id or its rule's id ($3).
const NAMED: &str = "r.event_id = $1 AND r.organization_id = $2 AND (r.id = $3 OR r.rule_id = $3)";

type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// Rolls `events` up. Their rows are locked first, in id order as a finish locks them, in a
/// statement of their own: the roll-up then reads its counts in a snapshot taken after any
/// finish that held an event has committed (in one statement, PostgreSQL would re-check only the
/// event row after the wait and keep the counts it read before — a roll-up that misses the
/// finish's rule event, for good).
async fn rollup(
    tx: &mut Transaction<'static, Postgres>,
    events: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT id FROM events WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(events)
        .execute(&mut **tx)
        .await?;
    sqlx::query(&ROLLUP_SQL)
        .bind(events)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Wakes the delivery workers of every node once the transaction commits.
async fn wake(tx: &mut Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::storage::changes::CHANNEL)
        .bind(crate::storage::changes::DELIVERIES_DUE)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the named rule event; its id and state.
async fn lock_named(
    tx: &mut Transaction<'static, Postgres>,
    org: OrganizationId,
    event: EventId,
    rule: Uuid,
) -> Result<Option<Named>, sqlx::Error> {
    let row: Option<(Uuid, String, Option<DateTime<Utc>>, String)> = sqlx::query_as(&format!(
        "SELECT r.id, r.status, r.next_attempt_at, r.created_by FROM rule_events r \
         WHERE {NAMED} FOR UPDATE"
    ))
    .bind(event.0)
    .bind(org.0)
    .bind(rule)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|(id, status, next_attempt_at, created_by)| {
        Ok(Named {
            id,
            status: decode_status(&status)?,
            next_attempt_at,
            is_test: created_by == TEST_CREATED_BY,
        })
    })
    .transpose()
}

impl PostgresStore {
    /// Runs `body` in a transaction, again when the database aborted it to break a deadlock.
    async fn in_transaction<T>(
        &self,
        body: impl for<'a> Fn(&'a mut Transaction<'static, Postgres>) -> TxFuture<'a, T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let result = match body(&mut tx).await {
                Ok(value) => tx.commit().await.map(|()| value),
                Err(err) => Err(err),
            };
            match result {
                Err(err) if is_transient(&err) && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %err, "support operation aborted by the database; retrying");
                }
                other => return Ok(other?),
            }
        }
    }

    pub(super) async fn select_events(
        &self,
        org: OrganizationId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Vec<EventRecord>> {
        let (sql, binds) =
            operations::event_list_query(EVENT_COLUMNS, org, filter, page, |n| format!("${n}"));
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Uuid(u) => query.bind(u),
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(event_record).collect::<Result<_, _>>()?)
    }

    pub(super) async fn select_payload(
        &self,
        org: OrganizationId,
        id: EventId,
    ) -> Result<Option<Option<serde_json::Value>>> {
        let row: Option<(Option<Json<serde_json::Value>>,)> =
            sqlx::query_as("SELECT payload FROM events WHERE id = $1 AND organization_id = $2")
                .bind(id.0)
                .bind(org.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(payload,)| payload.map(|p| p.0)))
    }

    pub(super) async fn select_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
    ) -> Result<Option<RuleEventRecord>> {
        let row: Option<PgRow> = sqlx::query(&format!(
            "SELECT {RULE_EVENT_COLUMNS} FROM rule_events r JOIN events e ON e.id = r.event_id \
             WHERE {NAMED}"
        ))
        .bind(event.0)
        .bind(org.0)
        .bind(rule)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(rule_event_record).transpose()?)
    }

    /// The named rule event as it is after a committed change.
    async fn reread(&self, org: OrganizationId, event: EventId, id: Uuid) -> Result<Manual> {
        Ok(match self.select_rule_event(org, event, id).await? {
            Some(record) => Manual::Done(Box::new(record)),
            None => Manual::NotFound,
        })
    }

    pub(super) async fn manual_retry(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Manual> {
        let verdict = self
            .in_transaction(|tx| {
                Box::pin(async move {
                    let Some(named) = lock_named(tx, org, event, rule).await? else {
                        return Ok(Err(Manual::NotFound));
                    };
                    if named.is_test {
                        return Ok(Err(Manual::Test));
                    }
                    let id = named.id;
                    let status =
                        match operations::retry_verdict(named.status, named.next_attempt_at, now) {
                            RetryVerdict::Final(s) => return Ok(Err(Manual::Final(s))),
                            RetryVerdict::TooEarly => return Ok(Err(Manual::TooEarly)),
                            RetryVerdict::Requeue(status) => status,
                        };
                    sqlx::query(
                        "UPDATE rule_events SET status = $2, next_attempt_at = $3, \
                             completed_at = NULL, lease_until = NULL, lease_owner = NULL \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(status)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    rollup(tx, &[event.0], now).await?;
                    wake(tx).await?;
                    Ok(Ok(id))
                })
            })
            .await?;
        match verdict {
            Ok(id) => self.reread(org, event, id).await,
            Err(refused) => Ok(refused),
        }
    }

    pub(super) async fn manual_cancel(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Manual> {
        let verdict = self
            .in_transaction(|tx| {
                Box::pin(async move {
                    let Some(Named { id, status, .. }) = lock_named(tx, org, event, rule).await?
                    else {
                        return Ok(Err(Manual::NotFound));
                    };
                    match operations::cancel_verdict(status) {
                        Some(Err(status)) => return Ok(Err(Manual::Final(status))),
                        None => {}
                        Some(Ok(())) => {
                            sqlx::query(
                                "UPDATE rule_events SET status = 'canceled', \
                                     next_attempt_at = NULL, completed_at = $2 WHERE id = $1",
                            )
                            .bind(id)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                            rollup(tx, &[event.0], now).await?;
                        }
                    }
                    Ok(Ok(id))
                })
            })
            .await?;
        match verdict {
            Ok(id) => self.reread(org, event, id).await,
            Err(refused) => Ok(refused),
        }
    }

    pub(super) async fn cancel_whole_event(
        &self,
        org: OrganizationId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        self.in_transaction(|tx| {
            Box::pin(async move {
                let found: Option<(i32,)> =
                    sqlx::query_as("SELECT 1 FROM events WHERE id = $1 AND organization_id = $2")
                        .bind(event.0)
                        .bind(org.0)
                        .fetch_optional(&mut **tx)
                        .await?;
                if found.is_none() {
                    return Ok(None);
                }
                let canceled: Vec<(Uuid,)> = sqlx::query_as(
                    "WITH locked AS MATERIALIZED ( \
                         SELECT id FROM rule_events \
                         WHERE event_id = $1 AND organization_id = $2 \
                           AND status IN ('pending', 'processing', 'retrying', 'failed') \
                         ORDER BY id FOR UPDATE) \
                     UPDATE rule_events r SET status = 'canceled', next_attempt_at = NULL, \
                         completed_at = $3 \
                     FROM locked WHERE r.id = locked.id RETURNING r.id",
                )
                .bind(event.0)
                .bind(org.0)
                .bind(now)
                .fetch_all(&mut **tx)
                .await?;
                if !canceled.is_empty() {
                    rollup(tx, &[event.0], now).await?;
                }
                Ok(Some(canceled.len() as u64))
            })
        })
        .await
    }

    pub(super) async fn requeue(
        &self,
        org: OrganizationId,
        f: &ReplayFilter,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Replayed> {
        let (limit, f) = (limit.max(0), *f);
        self.in_transaction(move |tx| {
            Box::pin(async move {
                // One more than the limit is locked to learn whether more match; rows another
                // transaction holds are skipped (a concurrent replay takes them).
                let sql = format!(
                    "WITH chosen AS MATERIALIZED ( \
                         SELECT id, event_id, created_at FROM rule_events \
                         WHERE organization_id = $1 AND workspace_id = $2 AND status = $3 \
                           AND created_at >= $4 AND created_at < $5 \
                           AND ($6::uuid IS NULL OR connection_id = $6) \
                           AND ($7::uuid IS NULL OR rule_id = $7) \
                           AND created_by <> $8 \
                           AND (lease_until IS NULL OR lease_until < $9) \
                           AND (status <> 'retrying' OR next_attempt_at IS NULL \
                                OR next_attempt_at > $9){} \
                         ORDER BY created_at, id LIMIT $10 + 1 FOR UPDATE SKIP LOCKED \
                     ), taken AS ( \
                         SELECT id, event_id FROM chosen ORDER BY created_at, id LIMIT $10 \
                     ), updated AS ( \
                         UPDATE rule_events r SET status = $11, next_attempt_at = $9, \
                             completed_at = NULL, lease_until = NULL, lease_owner = NULL \
                         FROM taken WHERE r.id = taken.id RETURNING r.event_id \
                     ) \
                     SELECT (SELECT count(*) FROM chosen) AS matched, \
                            (SELECT array_agg(DISTINCT event_id) FROM updated) AS events",
                    operations::replayable_term(f.status)
                );
                let rows = sqlx::query(&sql)
                    .bind(org.0)
                    .bind(f.workspace.0)
                    .bind(f.status.as_str())
                    .bind(f.since)
                    .bind(f.until)
                    .bind(f.connection.map(|c| c.0))
                    .bind(f.rule.map(|r| r.0))
                    .bind(TEST_CREATED_BY)
                    .bind(now)
                    .bind(limit)
                    .bind(REPLAY_STATUS)
                    .fetch_one(&mut **tx)
                    .await?;
                let matched: i64 = rows.try_get("matched")?;
                let events: Option<Vec<Uuid>> = rows.try_get("events")?;
                let events = events.unwrap_or_default();
                if !events.is_empty() {
                    rollup(tx, &events, now).await?;
                    wake(tx).await?;
                }
                Ok(Replayed {
                    count: matched.min(limit) as u64,
                    has_more: matched > limit,
                })
            })
        })
        .await
    }

    pub(super) async fn store_test_delivery(&self, t: &TestDelivery) -> Result<()> {
        let a = &t.attempt;
        let finished = operations::test_finished_at(a);
        let mut tx = self.pool.begin().await?;
        insert_rows(&mut tx, std::slice::from_ref(&t.event), &[0]).await?;
        sqlx::query(
            "UPDATE rule_events SET status = $2, attempt_count = 1, next_attempt_at = NULL, \
                 started_at = $3, completed_at = $4, last_error = $5 WHERE id = $1",
        )
        .bind(a.rule_event_id.0)
        .bind(t.status.as_str())
        .bind(a.started_at)
        .bind(finished)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE events SET started_at = $2 WHERE id = $1")
            .bind(t.event.id.0)
            .bind(a.started_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO attempts (id, organization_id, workspace_id, event_id, rule_event_id, \
                 attempt_number, started_at, duration_ms, outcome_code, http_status, error, \
                 calls, is_test) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(a.id.0)
        .bind(a.organization_id.0)
        .bind(a.workspace_id.0)
        .bind(a.event_id.0)
        .bind(a.rule_event_id.0)
        .bind(i32::try_from(a.attempt_number).unwrap_or(i32::MAX))
        .bind(a.started_at)
        .bind(a.duration_ms)
        .bind(a.outcome_code.as_str())
        .bind(a.http_status.map(i32::from))
        .bind(&a.error)
        .bind(Json(&a.calls))
        .bind(a.is_test)
        .execute(&mut *tx)
        .await?;
        rollup(&mut tx, &[t.event.id.0], finished).await?;
        tx.commit().await?;
        Ok(())
    }
}
