//! `POST /api/v1/events` and `POST /api/v1/events/bulk`: validate, resolve the workspace, plan
//! deliveries, group-commit, and answer only after the commit.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    DeliveryStatus, EventId, EventRecord, IdempotencyClaim, InsertOutcome, NewEvent, WorkspaceId,
};
use crate::error::{ApiError, ErrorDetail, FieldError};
use crate::http::AppState;
use crate::http::auth::IngestCaller;
use crate::http::extract::{JsonBody, MAX_BODY, MAX_BULK_BODY};
use crate::ingest::validate::canonical_hash;
use crate::ingest::{SubmitError, ValidEvent, validate_event};
use crate::metrics::{Endpoint, IngestResult, Status};

/// Most items in one bulk call.
pub const MAX_BULK_ITEMS: usize = 100;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An accepted event as the API returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventObject {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(example = "event")]
    pub kind: String,
    pub event: String,
    pub workspace: Uuid,
    pub resource: String,
    pub resource_id: Option<String>,
    /// The credential that sent it: `publishable_key` or `machine_key`.
    pub created_by: String,
    pub created_at: String,
}

impl From<&EventRecord> for EventObject {
    fn from(e: &EventRecord) -> Self {
        Self {
            id: e.id.0,
            kind: "event".into(),
            event: e.event.clone(),
            workspace: e.workspace_id.0,
            resource: e.resource.clone(),
            resource_id: e.resource_id.clone(),
            created_by: e.created_by.clone(),
            created_at: crate::http::timestamp(e.created_at),
        }
    }
}

/// `{"event": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EventEnvelope {
    pub event: EventObject,
}

/// The request body of `POST /events` (also one item of `/events/bulk`).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EventInput {
    /// Event name, non-blank, at most 128 characters.
    #[schema(example = "page.completed")]
    event: String,
    /// At least one non-empty value. `email`, when present, must be a valid address.
    #[schema(value_type = Object)]
    payload: Value,
    /// Defaults to `global`.
    resource: Option<String>,
    /// `^[A-Za-z0-9._:-]{1,64}$`
    resource_id: Option<String>,
    /// Required with machine-key auth only.
    workspace: Option<Uuid>,
}

/// One refused bulk item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItemError {
    pub index: usize,
    pub message: String,
    pub error: ErrorDetail,
}

/// A bulk record: an accepted event or an item error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BulkRecord {
    Event(EventObject),
    Error(BulkItemError),
}

/// `{"count", "error_count", "records"}` in input order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub count: usize,
    pub error_count: usize,
    pub records: Vec<BulkRecord>,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::validation(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )])
    };
    let key = raw.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Closed => ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; retry",
            )
        },
        SubmitError::Storage(s) => ApiError::internal(&s),
    }
}

fn key_reused() -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request body",
    )
}

fn workspace_not_found() -> ApiError {
    ApiError {
        data: vec![FieldError::new("workspace", "not found")],
        ..ApiError::new(
            StatusCode::NOT_FOUND,
            "workspace_not_found",
            "workspace not found",
        )
    }
}

/// Builds the row to commit. Rule fan-out is planned here, inside the same commit as the event.
async fn new_event(
    state: &AppState,
    caller: &IngestCaller,
    workspace: WorkspaceId,
    valid: ValidEvent,
    idempotency: Option<IdempotencyClaim>,
) -> Result<NewEvent, ApiError> {
    let rule_events = state.plan_deliveries(workspace, &valid).await?;
    Ok(NewEvent {
        id: EventId::new_v7(),
        organization_id: caller.org(),
        workspace_id: workspace,
        status: if rule_events.is_empty() {
            DeliveryStatus::Completed
        } else {
            DeliveryStatus::Pending
        },
        event: valid.event,
        resource: valid.resource,
        resource_id: valid.resource_id,
        payload: valid.payload,
        contact_email: valid.contact_email,
        created_by: caller.created_by().to_owned(),
        created_at: crate::domain::now(),
        rule_events,
        idempotency,
    })
}

/// Which workspace an event goes to: the publishable key's, or the body's (checked against the org).
async fn resolve_workspace(
    state: &AppState,
    caller: &IngestCaller,
    requested: Option<Uuid>,
    cache: &mut HashMap<Uuid, bool>,
) -> Result<WorkspaceId, ApiError> {
    match caller {
        IngestCaller::Publishable(k) => Ok(k.workspace_id),
        IngestCaller::Machine(m) => {
            let id = requested.ok_or_else(workspace_not_found)?;
            let exists = match cache.get(&id) {
                Some(known) => *known,
                None => {
                    let found = state
                        .store
                        .get_workspace(m.organization_id, WorkspaceId(id))
                        .await?
                        .is_some();
                    cache.insert(id, found);
                    found
                }
            };
            if exists {
                Ok(WorkspaceId(id))
            } else {
                Err(workspace_not_found())
            }
        }
    }
}

/// What one ingest request did with its events; the handlers leave it on their response for `track`.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    accepted: u64,
    replayed: u64,
    rejected: u64,
}

impl Tally {
    fn rejected(n: usize) -> Self {
        Self {
            rejected: n as u64,
            ..Self::default()
        }
    }

    fn count(&mut self, outcome: &InsertOutcome) {
        match outcome {
            InsertOutcome::Inserted(_) => self.accepted += 1,
            InsertOutcome::Replayed(_) => self.replayed += 1,
            InsertOutcome::IdempotencyConflict => self.rejected += 1,
        }
    }

    fn on(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware on the ingest routes: counts each request by endpoint and status, its latency, and
/// its events by result. A POST refused before its handler ran (auth, content type, size, malformed
/// JSON) carries no tally and counts as one rejected event.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // `GET /api/v1/events` (the history list) shares the ingest path and router: not ingest.
    if req.method() == Method::GET {
        return next.run(req).await;
    }
    let started = Instant::now();
    let endpoint = if req.uri().path().ends_with("/bulk") {
        Endpoint::Bulk
    } else {
        Endpoint::Events
    };
    let post = req.method() == Method::POST;
    let response = next.run(req).await;
    let m = &state.metrics;
    m.ingest_duration.observe(started.elapsed());
    let status = Status::of(response.status().as_u16());
    m.ingest_requests.add((endpoint, status), 1);
    let tally = match response.extensions().get::<Tally>() {
        Some(t) => *t,
        None if post => Tally::rejected(1),
        None => Tally::default(),
    };
    m.ingest_events.add(IngestResult::Accepted, tally.accepted);
    m.ingest_events.add(IngestResult::Replayed, tally.replayed);
    m.ingest_events.add(IngestResult::Rejected, tally.rejected);
    response
}

/// Sends one event.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body = EventInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key (≤ 255 chars), 24 h per workspace")),
    responses(
        (status = 201, description = "Committed, with its deliveries", body = EventEnvelope),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "Unknown workspace (machine key)", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)),
    security(("publishable_key" = []), ("bearer" = []), ("basic" = [])))]
pub async fn create_event(
    State(state): State<AppState>,
    caller: IngestCaller,
    headers: HeaderMap,
    JsonBody(body, len): JsonBody<MAX_BODY>,
) -> Response {
    match submit_event(state, caller, headers, body, len).await {
        Ok((response, tally)) => tally.on(response),
        Err(e) => Tally::rejected(1).on(e.into_response()),
    }
}

async fn submit_event(
    state: AppState,
    caller: IngestCaller,
    headers: HeaderMap,
    body: Value,
    len: usize,
) -> Result<(Response, Tally), ApiError> {
    state
        .ingest_limiter
        .check(&caller.rate_key(), 1)
        .map_err(ApiError::too_many_requests)?;
    let idem = idempotency_key(&headers)?;
    let valid = validate_event(
        &body,
        "",
        matches!(caller, IngestCaller::Machine(_)),
        Some(len),
    )
    .map_err(ApiError::validation)?;
    let workspace =
        resolve_workspace(&state, &caller, valid.workspace, &mut HashMap::new()).await?;
    let claim = idem.map(|key| IdempotencyClaim {
        key,
        request_hash: canonical_hash(&body),
    });
    let event = new_event(&state, &caller, workspace, valid, claim).await?;
    let deliveries = !event.rule_events.is_empty();
    let outcome = state
        .batcher
        .submit(vec![event])
        .await
        .map_err(submit_error)?
        .pop()
        .ok_or_else(|| ApiError::internal(&"commit returned no outcome"))?;
    if deliveries {
        state.delivery_wake.notify_one();
    }
    let mut tally = Tally::default();
    tally.count(&outcome);
    match outcome {
        InsertOutcome::Inserted(e) | InsertOutcome::Replayed(e) => {
            let body = EventEnvelope {
                event: EventObject::from(&e),
            };
            Ok(((StatusCode::CREATED, Json(body)).into_response(), tally))
        }
        InsertOutcome::IdempotencyConflict => Err(key_reused()),
    }
}

fn item_error(index: usize, e: ApiError) -> BulkRecord {
    let body = e.body();
    BulkRecord::Error(BulkItemError {
        index,
        message: body.message,
        error: body.error,
    })
}

/// Sends 1–100 events; each item is accepted or refused on its own.
#[utoipa::path(post, path = "/api/v1/events/bulk", tag = "events",
    request_body = Vec<EventInput>,
    params(("Idempotency-Key" = Option<String>, Header, description = "Applies per item (key + index)")),
    responses(
        (status = 201, description = "All accepted", body = BulkResponse),
        (status = 207, description = "Some accepted", body = BulkResponse),
        (status = 400, description = "None accepted, or the body is bad", body = BulkResponse),
        (status = 401, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)),
    security(("publishable_key" = []), ("bearer" = []), ("basic" = [])))]
pub async fn create_events_bulk(
    State(state): State<AppState>,
    caller: IngestCaller,
    headers: HeaderMap,
    JsonBody(body, _): JsonBody<MAX_BULK_BODY>,
) -> Response {
    // Refused as a whole: every item is rejected (a body that is not an array counts as one).
    let submitted = body.as_array().map_or(1, |items| items.len().max(1));
    match submit_bulk(state, caller, headers, body).await {
        Ok((response, tally)) => tally.on(response),
        Err(e) => Tally::rejected(submitted).on(e.into_response()),
    }
}

async fn submit_bulk(
    state: AppState,
    caller: IngestCaller,
    headers: HeaderMap,
    body: Value,
) -> Result<(Response, Tally), ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON array of events",
        )]));
    };
    if items.is_empty() || items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must hold 1 to 100 events",
        )]));
    }
    state
        .ingest_limiter
        .check(&caller.rate_key(), items.len() as u32)
        .map_err(ApiError::too_many_requests)?;
    let idem = idempotency_key(&headers)?;
    let machine = matches!(caller, IngestCaller::Machine(_));

    let mut records: Vec<Option<BulkRecord>> = Vec::with_capacity(items.len());
    let mut to_commit: Vec<(usize, NewEvent)> = Vec::new();
    let mut workspaces = HashMap::new();
    let mut tally = Tally::default();
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("[{index}].");
        let valid = match validate_event(item, &prefix, machine, None) {
            Ok(v) => v,
            Err(errors) => {
                records.push(Some(item_error(index, ApiError::validation(errors))));
                continue;
            }
        };
        let workspace =
            match resolve_workspace(&state, &caller, valid.workspace, &mut workspaces).await {
                Ok(w) => w,
                Err(e) => {
                    records.push(Some(item_error(index, e)));
                    continue;
                }
            };
        let claim = idem.as_ref().map(|key| IdempotencyClaim {
            key: format!("{key}#{index}"),
            request_hash: canonical_hash(item),
        });
        to_commit.push((
            index,
            new_event(&state, &caller, workspace, valid, claim).await?,
        ));
        records.push(None);
    }

    if !to_commit.is_empty() {
        let (indexes, events): (Vec<usize>, Vec<NewEvent>) = to_commit.into_iter().unzip();
        let deliveries = events.iter().any(|e| !e.rule_events.is_empty());
        let outcomes = state.batcher.submit(events).await.map_err(submit_error)?;
        if deliveries {
            state.delivery_wake.notify_one();
        }
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            tally.count(&outcome);
            records[index] = Some(match outcome {
                InsertOutcome::Inserted(e) | InsertOutcome::Replayed(e) => {
                    BulkRecord::Event(EventObject::from(&e))
                }
                InsertOutcome::IdempotencyConflict => item_error(index, key_reused()),
            });
        }
    }

    let records: Vec<BulkRecord> = records.into_iter().flatten().collect();
    let error_count = records
        .iter()
        .filter(|r| matches!(r, BulkRecord::Error(_)))
        .count();
    // Every item error (validation, workspace, key reuse) is one rejected event.
    tally.rejected = error_count as u64;
    let status = if error_count == 0 {
        StatusCode::CREATED
    } else if error_count < records.len() {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = BulkResponse {
        count: records.len(),
        error_count,
        records,
    };
    Ok(((status, Json(body)).into_response(), tally))
}
