//! SQLite: what support reads and does — event lists, payloads, manual retry and cancel, replay,
//! and Send Test Event's record. Writes run in `BEGIN IMMEDIATE` on the single writer, so they are
//! serialized against claims and finishes without row locks.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::delivery::{ROLLUP_SQL, event_ids, insert_attempt, json_value};
use super::history::{RULE_EVENT_COLUMNS, rule_event_record};
use super::{EVENT_COLUMNS, SqliteStore, event_record, insert_event, micros};
use crate::domain::{EventId, EventRecord, OrganizationId};
use crate::storage::operations::{
    self, Bind, EventFilter, Manual, Named, REPLAY_STATUS, ReplayFilter, Replayed, RetryVerdict,
    TEST_CREATED_BY, TestDelivery,
};
use crate::storage::{PageRequest, Result, RuleEventRecord, decode_status};

/// Rule events one replay transaction requeues at most: a short hold of the single writer.
const REPLAY_CHUNK: i64 = 500;

/// The rule event of event ?1 in organization ?2 named by its id or its rule's id (?3).
const NAMED: &str = "r.event_id = ?1 AND r.organization_id = ?2 AND (r.id = ?3 OR r.rule_id = ?3)";

async fn rollup(
    tx: &mut Transaction<'static, Sqlite>,
    events: impl IntoIterator<Item = Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&ROLLUP_SQL)
        .bind(event_ids(events))
        .bind(micros(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The named rule event's id and state, read inside the write transaction.
async fn named_state(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrganizationId,
    event: EventId,
    rule: Uuid,
) -> Result<Option<Named>, sqlx::Error> {
    let row: Option<(Uuid, String, Option<i64>, String)> = sqlx::query_as(&format!(
        "SELECT r.id, r.status, r.next_attempt_at, r.created_by FROM rule_events r WHERE {NAMED}"
    ))
    .bind(event.0)
    .bind(org.0)
    .bind(rule)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|(id, status, next, created_by)| {
        Ok(Named {
            id,
            status: decode_status(&status)?,
            next_attempt_at: next.map(super::from_micros).transpose()?,
            is_test: created_by == TEST_CREATED_BY,
        })
    })
    .transpose()
}

impl SqliteStore {
    pub(super) async fn select_events(
        &self,
        org: OrganizationId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Vec<EventRecord>> {
        let (sql, binds) =
            operations::event_list_query(EVENT_COLUMNS, org, filter, page, |n| format!("?{n}"));
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Uuid(u) => query.bind(u),
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.reader).await?;
        Ok(rows.iter().map(event_record).collect::<Result<_, _>>()?)
    }

    pub(super) async fn select_payload(
        &self,
        org: OrganizationId,
        id: EventId,
    ) -> Result<Option<Option<serde_json::Value>>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT payload FROM events WHERE id = ?1 AND organization_id = ?2")
                .bind(id.0)
                .bind(org.0)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row
            .map(|(payload,)| payload.as_deref().map(json_value).transpose())
            .transpose()?)
    }

    pub(super) async fn select_rule_event(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
    ) -> Result<Option<RuleEventRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_EVENT_COLUMNS} FROM rule_events r JOIN events e ON e.id = r.event_id \
             WHERE {NAMED}"
        ))
        .bind(event.0)
        .bind(org.0)
        .bind(rule)
        .fetch_optional(&self.reader)
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
        let mut tx = self.begin_write().await?;
        let Some(named) = named_state(&mut tx, org, event, rule).await? else {
            return Ok(Manual::NotFound);
        };
        if named.is_test {
            return Ok(Manual::Test);
        }
        let id = named.id;
        let status = match operations::retry_verdict(named.status, named.next_attempt_at, now) {
            RetryVerdict::Final(s) => return Ok(Manual::Final(s)),
            RetryVerdict::TooEarly => return Ok(Manual::TooEarly),
            RetryVerdict::Requeue(status) => status,
        };
        sqlx::query(
            "UPDATE rule_events SET status = ?2, next_attempt_at = ?3, completed_at = NULL, \
                 lease_until = NULL, lease_owner = NULL WHERE id = ?1",
        )
        .bind(id)
        .bind(status)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        rollup(&mut tx, [event.0], now).await?;
        tx.commit().await?;
        self.reread(org, event, id).await
    }

    pub(super) async fn manual_cancel(
        &self,
        org: OrganizationId,
        event: EventId,
        rule: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Manual> {
        let mut tx = self.begin_write().await?;
        let Some(Named { id, status, .. }) = named_state(&mut tx, org, event, rule).await? else {
            return Ok(Manual::NotFound);
        };
        match operations::cancel_verdict(status) {
            Some(Err(status)) => return Ok(Manual::Final(status)),
            None => {}
            Some(Ok(())) => {
                sqlx::query(
                    "UPDATE rule_events SET status = 'canceled', next_attempt_at = NULL, \
                         completed_at = ?2 WHERE id = ?1",
                )
                .bind(id)
                .bind(micros(now))
                .execute(&mut *tx)
                .await?;
                rollup(&mut tx, [event.0], now).await?;
            }
        }
        tx.commit().await?;
        self.reread(org, event, id).await
    }

    pub(super) async fn cancel_whole_event(
        &self,
        org: OrganizationId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let mut tx = self.begin_write().await?;
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM events WHERE id = ?1 AND organization_id = ?2")
                .bind(event.0)
                .bind(org.0)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Ok(None);
        }
        let done = sqlx::query(
            "UPDATE rule_events SET status = 'canceled', next_attempt_at = NULL, completed_at = ?3 \
             WHERE event_id = ?1 AND organization_id = ?2 \
               AND status IN ('pending', 'processing', 'retrying', 'failed')",
        )
        .bind(event.0)
        .bind(org.0)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            rollup(&mut tx, [event.0], now).await?;
        }
        tx.commit().await?;
        Ok(Some(done.rows_affected()))
    }

    /// Replays in transactions of at most [`REPLAY_CHUNK`] rule events, so the single writer is
    /// never held for a whole 10,000-row replay: ingest and claims interleave between chunks.
    /// Requeued rows no longer match (they are `retrying`, due now), so each chunk takes the next.
    pub(super) async fn requeue(
        &self,
        org: OrganizationId,
        f: &ReplayFilter,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Replayed> {
        let limit = limit.max(0);
        let mut count = 0;
        loop {
            let want = (limit - count).min(REPLAY_CHUNK);
            // One row more than wanted tells whether more match, without another query.
            let (taken, more) = self.requeue_chunk(org, f, now, want).await?;
            count += taken;
            if !more || count >= limit {
                return Ok(Replayed {
                    count: count as u64,
                    has_more: more,
                });
            }
        }
    }

    /// Requeues at most `want` matching rule events in one write transaction; how many, and
    /// whether more match.
    async fn requeue_chunk(
        &self,
        org: OrganizationId,
        f: &ReplayFilter,
        now: DateTime<Utc>,
        want: i64,
    ) -> Result<(i64, bool)> {
        // ?1 org, ?2 workspace, ?3 status, ?4 since, ?5 until, ?6 connection, ?7 rule, ?8 now.
        const MATCHING: &str = "organization_id = ?1 AND workspace_id = ?2 AND status = ?3 \
             AND created_at >= ?4 AND created_at < ?5 \
             AND (?6 IS NULL OR connection_id = ?6) AND (?7 IS NULL OR rule_id = ?7) \
             AND created_by <> ?9 AND (lease_until IS NULL OR lease_until < ?8) \
             AND (status <> 'retrying' OR next_attempt_at IS NULL OR next_attempt_at > ?8)";
        let mut tx = self.begin_write().await?;
        let chosen: Vec<(i64, Uuid)> = sqlx::query_as(&format!(
            "SELECT rowid, event_id FROM rule_events WHERE {MATCHING}{} \
             ORDER BY created_at, id LIMIT ?10",
            operations::replayable_term(f.status)
        ))
        .bind(org.0)
        .bind(f.workspace.0)
        .bind(f.status.as_str())
        .bind(micros(f.since))
        .bind(micros(f.until))
        .bind(f.connection.map(|c| c.0))
        .bind(f.rule.map(|r| r.0))
        .bind(micros(now))
        .bind(TEST_CREATED_BY)
        .bind(want + 1)
        .fetch_all(&mut *tx)
        .await?;
        let more = chosen.len() as i64 > want;
        let chosen = &chosen[..chosen.len().min(want as usize)];
        if chosen.is_empty() {
            return Ok((0, more));
        }
        let rowids: Vec<i64> = chosen.iter().map(|(rowid, _)| *rowid).collect();
        sqlx::query(
            "UPDATE rule_events SET status = ?2, next_attempt_at = ?3, completed_at = NULL, \
                 lease_until = NULL, lease_owner = NULL \
             WHERE rowid IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(&rowids).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
        .bind(REPLAY_STATUS)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        rollup(&mut tx, chosen.iter().map(|(_, event)| *event), now).await?;
        tx.commit().await?;
        Ok((chosen.len() as i64, more))
    }

    pub(super) async fn store_test_delivery(&self, t: &TestDelivery) -> Result<()> {
        let a = &t.attempt;
        let finished = operations::test_finished_at(a);
        let mut tx = self.begin_write().await?;
        insert_event(&mut tx, &t.event).await?;
        sqlx::query(
            "UPDATE rule_events SET status = ?2, attempt_count = 1, next_attempt_at = NULL, \
                 started_at = ?3, completed_at = ?4, last_error = ?5 WHERE id = ?1",
        )
        .bind(a.rule_event_id.0)
        .bind(t.status.as_str())
        .bind(micros(a.started_at))
        .bind(micros(finished))
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE events SET started_at = ?2 WHERE id = ?1")
            .bind(t.event.id.0)
            .bind(micros(a.started_at))
            .execute(&mut *tx)
            .await?;
        insert_attempt(&mut tx, a).await?;
        rollup(&mut tx, [t.event.id.0], finished).await?;
        tx.commit().await?;
        Ok(())
    }
}
