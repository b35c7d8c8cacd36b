//! Events and delivery history: lists with filters, one event with its rule events, its payload,
//! attempts, and the levers support pulls (retry, cancel, replay).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    AttemptId, AttemptRecord, CallRecord, DeliveryStatus, EventId, EventRecord, OrganizationId,
    WorkspaceId,
};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::auth::Machine;
use crate::http::extract::{OptionalJsonBody, QueryMap, parse_id};
use crate::http::ingest::EventObject;
use crate::http::pagination::{Page, PageParams};
use crate::http::{AppState, timestamp};
use crate::ingest::validate::is_email;
use crate::storage::RuleEventRecord;
use crate::storage::operations::{EventFilter, Manual, RETRY_GUARD};

/// An event as history shows it: the ingest answer plus its delivery roll-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSummary {
    /// `created_by` names the credential; `send_test_event` marks Send Test Event's records.
    #[serde(flatten)]
    pub event: EventObject,
    pub status: DeliveryStatus,
    pub total_rules: i64,
    pub completed_count: i64,
    pub failed_count: i64,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<&EventRecord> for EventSummary {
    fn from(e: &EventRecord) -> Self {
        Self {
            event: e.into(),
            status: e.status,
            total_rules: e.total_rules,
            completed_count: e.completed_count,
            failed_count: e.failed_count,
            started_at: e.started_at.map(timestamp),
            completed_at: e.completed_at.map(timestamp),
        }
    }
}

/// One rule event: the delivery of one event through one rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleEventObject {
    pub id: Uuid,
    /// Always `rule`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub workspace: Uuid,
    /// The event's name.
    pub event: String,
    pub event_id: Uuid,
    pub resource: String,
    pub resource_id: Option<String>,
    pub connection: Uuid,
    pub rule: Uuid,
    pub integration_type: String,
    pub status: DeliveryStatus,
    /// Every attempt, throttled ones included.
    pub attempt_count: i64,
    /// `null` when final, running, or parked until its connection is fixed.
    pub next_attempt_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl From<&RuleEventRecord> for RuleEventObject {
    fn from(r: &RuleEventRecord) -> Self {
        Self {
            id: r.id.0,
            kind: "rule",
            workspace: r.workspace_id.0,
            event: r.event.clone(),
            event_id: r.event_id.0,
            resource: r.resource.clone(),
            resource_id: r.resource_id.clone(),
            connection: r.connection_id.0,
            rule: r.rule_id.0,
            integration_type: r.integration_type.clone(),
            status: r.status,
            attempt_count: r.attempt_count,
            next_attempt_at: r.next_attempt_at.map(timestamp),
            started_at: r.started_at.map(timestamp),
            completed_at: r.completed_at.map(timestamp),
            last_error: r.last_error.clone(),
            created_by: r.created_by.clone(),
            created_at: timestamp(r.created_at),
        }
    }
}

/// `GET /events/{id}`: the event with its rule events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventSummary,
    pub rule_events: Vec<RuleEventObject>,
}

/// `GET /events/{id}/payload`: the detail plus the payload (`null` once purged).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventWithPayload {
    #[serde(flatten)]
    pub detail: EventDetail,
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// One attempt at a delivery, with every call it made.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptObject {
    pub id: Uuid,
    pub attempt_number: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// `delivered`, `rejected_client_error`, `rejected_server_error`, `rate_limited`,
    /// `auth_failed`, `timeout`, `network_error`, `mapping_error` or `internal_error`.
    pub outcome_code: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub calls: Vec<CallRecord>,
    /// (+) Made by Send Test Event.
    pub test: bool,
    /// (+) The event and rule event the attempt belongs to.
    pub event_id: Uuid,
    pub rule_event_id: Uuid,
}

impl From<&AttemptRecord> for AttemptObject {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            id: a.id.0,
            attempt_number: a.attempt_number,
            started_at: timestamp(a.started_at),
            duration_ms: a.duration_ms,
            outcome_code: a.outcome_code.as_str().to_owned(),
            http_status: a.http_status,
            error: a.error.clone(),
            calls: a.calls.clone(),
            test: a.is_test,
            event_id: a.event_id.0,
            rule_event_id: a.rule_event_id.0,
        }
    }
}

fn parse_status(raw: &str, param: &str) -> Result<DeliveryStatus, ApiError> {
    DeliveryStatus::parse(raw).ok_or_else(|| {
        ApiError::validation(vec![FieldError::new(
            param,
            "must be one of pending, processing, retrying, completed, failed, canceled",
        )])
    })
}

/// The list filters of the query string: equality on the event's fields, `email` on its contact.
fn event_filter(q: &QueryMap, workspace: Option<WorkspaceId>) -> Result<EventFilter, ApiError> {
    let text = |name: &str| q.0.get(name).filter(|v| !v.is_empty()).cloned();
    let status = text("status")
        .map(|s| parse_status(&s, "status"))
        .transpose()?;
    let contact_email = match text("email") {
        Some(e) if is_email(e.trim()) => Some(e.trim().to_lowercase()),
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "email",
                "must be an email address",
            )]));
        }
        None => None,
    };
    Ok(EventFilter {
        workspace,
        event: text("event"),
        status,
        resource: text("resource"),
        resource_id: text("resource_id"),
        contact_email,
    })
}

async fn list(
    state: &AppState,
    org: OrganizationId,
    workspace: Option<WorkspaceId>,
    query: &QueryMap,
) -> Result<Page<EventSummary>, ApiError> {
    let params = PageParams::from_query(query)?;
    let filter = event_filter(query, workspace)?;
    let rows = state
        .store
        .list_events(org, &filter, params.request())
        .await?;
    Ok(params.page(rows, |e| e.id.0, |e| EventSummary::from(&e)))
}

/// The organization's events, newest first; `event`, `status`, `resource`, `resource_id` filter
/// by equality, (+) `email` by the contact's address (any letter case).
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(("event" = Option<String>, Query), ("status" = Option<String>, Query), ("resource" = Option<String>, Query),
           ("resource_id" = Option<String>, Query), ("email" = Option<String>, Query),
           ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<EventSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Machine,
    query: QueryMap,
) -> Result<Json<Page<EventSummary>>, ApiError> {
    Ok(Json(list(&state, caller.org(), None, &query).await?))
}

/// A workspace's events, newest first, with the same filters.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/events", tag = "events",
    params(("id" = Uuid, Path), ("event" = Option<String>, Query), ("status" = Option<String>, Query), ("resource" = Option<String>, Query),
           ("resource_id" = Option<String>, Query), ("email" = Option<String>, Query),
           ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<EventSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_workspace_events(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Page<EventSummary>>, ApiError> {
    let ws = WorkspaceId(parse_id(&id, "workspace")?);
    state.require_workspace(caller.org(), ws).await?;
    Ok(Json(list(&state, caller.org(), Some(ws), &query).await?))
}

/// The event with its rule events, or a 404.
async fn detail(
    state: &AppState,
    org: OrganizationId,
    id: EventId,
) -> Result<EventDetail, ApiError> {
    let event = state
        .store
        .get_event(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let rule_events = state.store.list_rule_events(org, id).await?;
    Ok(EventDetail {
        event: (&event).into(),
        rule_events: rule_events.iter().map(Into::into).collect(),
    })
}

fn event_id(raw: &str) -> Result<EventId, ApiError> {
    Ok(EventId(parse_id(raw, "event")?))
}

/// One event with its delivery status and its rule events.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_event(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    Ok(Json(detail(&state, caller.org(), event_id(&id)?).await?))
}

/// The event as `GET /events/{id}` shows it, plus its payload (`null` once purged).
#[utoipa::path(get, path = "/api/v1/events/{id}/payload", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventWithPayload), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_event_payload(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<EventWithPayload>, ApiError> {
    let id = event_id(&id)?;
    let detail = detail(&state, caller.org(), id).await?;
    let payload = state
        .store
        .event_payload(caller.org(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(EventWithPayload {
        detail,
        payload: payload.unwrap_or(Value::Null),
    }))
}

/// The path's event id and the id naming one of its rule events (its own, or its rule's).
fn named(event: &str, rule: &str) -> Result<(EventId, Uuid), ApiError> {
    Ok((event_id(event)?, parse_id(rule, "rule event")?))
}

/// The rule event `{ruleId}` of event `{id}`: the path takes the rule event's id or its rule's.
async fn rule_event(
    state: &AppState,
    org: OrganizationId,
    event: &str,
    rule: &str,
) -> Result<RuleEventRecord, ApiError> {
    let (event, rule) = named(event, rule)?;
    state
        .store
        .get_rule_event(org, event, rule)
        .await?
        .ok_or_else(|| ApiError::not_found("rule event"))
}

/// One delivery's attempts, newest first.
#[utoipa::path(get, path = "/api/v1/events/{id}/rules/{ruleId}/attempts", tag = "events",
    params(("id" = Uuid, Path), ("ruleId" = Uuid, Path, description = "The rule event's id, or its rule's id"),
           ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AttemptObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_attempts(
    State(state): State<AppState>,
    caller: Machine,
    Path((id, rule)): Path<(String, String)>,
    query: QueryMap,
) -> Result<Json<Page<AttemptObject>>, ApiError> {
    let params = PageParams::from_query(&query)?;
    let delivery = rule_event(&state, caller.org(), &id, &rule).await?;
    let rows = state
        .store
        .list_attempts(caller.org(), delivery.id, params.request())
        .await?;
    Ok(Json(params.page(
        rows,
        |a| a.id.0,
        |a| AttemptObject::from(&a),
    )))
}

/// One attempt, with every call it made.
#[utoipa::path(get, path = "/api/v1/events/{id}/rules/{ruleId}/attempts/{attemptId}", tag = "events",
    params(("id" = Uuid, Path), ("ruleId" = Uuid, Path, description = "The rule event's id, or its rule's id"), ("attemptId" = Uuid, Path)),
    responses((status = 200, body = AttemptObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_attempt(
    State(state): State<AppState>,
    caller: Machine,
    Path((id, rule, attempt)): Path<(String, String, String)>,
) -> Result<Json<AttemptObject>, ApiError> {
    let delivery = rule_event(&state, caller.org(), &id, &rule).await?;
    let attempt = AttemptId(parse_id(&attempt, "attempt")?);
    match state.store.get_attempt(caller.org(), attempt).await? {
        Some(a) if a.rule_event_id == delivery.id => Ok(Json((&a).into())),
        _ => Err(ApiError::not_found("attempt")),
    }
}

/// Maps a manual retry or cancel to the answer.
fn manual_answer(outcome: Manual, doing: &str) -> Result<Json<RuleEventObject>, ApiError> {
    match outcome {
        Manual::Done(record) => Ok(Json((&*record).into())),
        Manual::NotFound => Err(ApiError::not_found("rule event")),
        Manual::Final(status) => Err(ApiError::conflict(
            "delivery_final",
            format!(
                "the delivery is {}; there is nothing to {doing}",
                status.as_str()
            ),
        )),
        Manual::Test => Err(ApiError::conflict(
            "test_delivery",
            "a Send Test Event delivery is not run again by the queue; send another test",
        )),
        Manual::TooEarly => Err(ApiError {
            retry_after: Some(RETRY_GUARD.num_seconds().unsigned_abs()),
            ..ApiError::new(
                StatusCode::TOO_EARLY,
                "delivery_in_progress",
                "an attempt is running or due within 5 seconds; retry after it",
            )
        }),
    }
}

/// Queues one delivery to run now (after the cause of its failure is fixed). 409 when it is
/// completed or canceled; 425 when an attempt is running or due within 5 s.
#[utoipa::path(post, path = "/api/v1/events/{id}/rules/{ruleId}/retry", tag = "events",
    params(("id" = Uuid, Path), ("ruleId" = Uuid, Path, description = "The rule event's id, or its rule's id")),
    responses((status = 200, body = RuleEventObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 425, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn retry_rule_event(
    State(state): State<AppState>,
    caller: Machine,
    Path((id, rule)): Path<(String, String)>,
    _body: OptionalJsonBody,
) -> Result<Json<RuleEventObject>, ApiError> {
    let (event, rule) = named(&id, &rule)?;
    let outcome = state
        .store
        .retry_rule_event(caller.org(), event, rule, crate::domain::now())
        .await?;
    if let Manual::Done(record) = &outcome {
        tracing::info!(event.id = %event, rule_event.id = %record.id, "delivery retried by hand");
        state.delivery_wake.notify_one();
    }
    manual_answer(outcome, "retry")
}

/// Stops further delivery of one rule event (an attempt in flight may still reach the
/// destination, but its result is not applied). 409 when it is already completed.
#[utoipa::path(post, path = "/api/v1/events/{id}/rules/{ruleId}/cancel", tag = "events",
    params(("id" = Uuid, Path), ("ruleId" = Uuid, Path, description = "The rule event's id, or its rule's id")),
    responses((status = 200, body = RuleEventObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn cancel_rule_event(
    State(state): State<AppState>,
    caller: Machine,
    Path((id, rule)): Path<(String, String)>,
    _body: OptionalJsonBody,
) -> Result<Json<RuleEventObject>, ApiError> {
    let (event, rule) = named(&id, &rule)?;
    let outcome = state
        .store
        .cancel_rule_event(caller.org(), event, rule, crate::domain::now())
        .await?;
    if let Manual::Done(record) = &outcome {
        tracing::info!(event.id = %event, rule_event.id = %record.id, "delivery canceled by hand");
    }
    manual_answer(outcome, "cancel")
}

/// Stops further delivery of every rule event of the event that is not completed (failed ones
/// too, so a replay leaves them alone); answers the event with its rule events.
#[utoipa::path(post, path = "/api/v1/events/{id}/cancel", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn cancel_event(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    _body: OptionalJsonBody,
) -> Result<Json<EventDetail>, ApiError> {
    let event = event_id(&id)?;
    let canceled = state
        .store
        .cancel_event(caller.org(), event, crate::domain::now())
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    tracing::info!(event.id = %event, canceled, "event canceled by hand");
    Ok(Json(detail(&state, caller.org(), event).await?))
}
