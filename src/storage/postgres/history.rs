//! PostgreSQL: delivery history reads (an event's rule events, a delivery's attempts), always
//! scoped to the organization.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::PostgresStore;
use crate::domain::{
    AttemptId, AttemptRecord, CallRecord, ConnectionId, EventId, OrganizationId, RuleEventId,
    RuleId, WorkspaceId,
};
use crate::storage::{PageRequest, Result, RuleEventRecord, decode_outcome, decode_status};

const ATTEMPT_COLUMNS: &str = "id, organization_id, workspace_id, event_id, rule_event_id, \
     attempt_number, started_at, duration_ms, outcome_code, http_status, error, calls, is_test";

pub(super) const RULE_EVENT_COLUMNS: &str = "r.id, r.organization_id, r.workspace_id, r.event_id, \
     r.rule_id, r.connection_id, r.integration_type, r.status, r.attempt_count, \
     r.throttled_count, r.next_attempt_at, r.started_at, r.completed_at, r.last_error, \
     r.created_by, r.created_at, e.event, e.resource, e.resource_id";

pub(super) fn rule_event_record(row: &PgRow) -> Result<RuleEventRecord, sqlx::Error> {
    Ok(RuleEventRecord {
        id: RuleEventId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event_id: EventId(row.try_get("event_id")?),
        rule_id: RuleId(row.try_get("rule_id")?),
        connection_id: ConnectionId(row.try_get("connection_id")?),
        integration_type: row.try_get("integration_type")?,
        status: decode_status(row.try_get("status")?)?,
        attempt_count: i64::from(row.try_get::<i32, _>("attempt_count")?),
        throttled_count: i64::from(row.try_get::<i32, _>("throttled_count")?),
        next_attempt_at: row.try_get("next_attempt_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        last_error: row.try_get("last_error")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        event: row.try_get("event")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
    })
}

fn attempt(row: &PgRow) -> Result<AttemptRecord, sqlx::Error> {
    let status: Option<i32> = row.try_get("http_status")?;
    Ok(AttemptRecord {
        id: AttemptId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        workspace_id: WorkspaceId(row.try_get("workspace_id")?),
        event_id: EventId(row.try_get("event_id")?),
        rule_event_id: RuleEventId(row.try_get("rule_event_id")?),
        attempt_number: i64::from(row.try_get::<i32, _>("attempt_number")?),
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        outcome_code: decode_outcome(row.try_get("outcome_code")?)?,
        http_status: status
            .map(|s| {
                u16::try_from(s).map_err(|_| {
                    sqlx::Error::Decode(format!("HTTP status {s} out of range").into())
                })
            })
            .transpose()?,
        error: row.try_get("error")?,
        calls: row.try_get::<Json<Vec<CallRecord>>, _>("calls")?.0,
        is_test: row.try_get("is_test")?,
    })
}

impl PostgresStore {
    pub(super) async fn select_rule_events(
        &self,
        org: OrganizationId,
        event: EventId,
    ) -> Result<Vec<RuleEventRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_EVENT_COLUMNS} FROM rule_events r JOIN events e ON e.id = r.event_id \
             WHERE r.event_id = $1 AND r.organization_id = $2 ORDER BY r.id"
        ))
        .bind(event.0)
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(rule_event_record)
            .collect::<Result<_, _>>()?)
    }

    pub(super) async fn select_attempts(
        &self,
        org: OrganizationId,
        rule_event: RuleEventId,
        page: PageRequest,
    ) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts \
             WHERE rule_event_id = $1 AND organization_id = $2 AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(rule_event.0)
        .bind(org.0)
        .bind(page.before)
        .bind(page.limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(attempt).collect::<Result<_, _>>()?)
    }

    pub(super) async fn select_attempt(
        &self,
        org: OrganizationId,
        id: AttemptId,
    ) -> Result<Option<AttemptRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(attempt).transpose()?)
    }
}
