//! (+) Replay: requeue a workspace's failed, canceled or waiting deliveries of a time window, at
//! most 10,000 per call.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{ConnectionId, DeliveryStatus, RuleId, WorkspaceId};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::AppState;
use crate::http::auth::Machine;
use crate::http::extract::{JsonBody, MAX_BODY, json_object, parse_id, string_field};
use crate::storage::operations::{REPLAY_MAX, ReplayFilter};

/// `POST /workspaces/{id}/replay`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayAnswer {
    /// Rule events requeued.
    pub count: u64,
    /// (+) More matched than one call requeues: call again.
    pub has_more: bool,
}

/// The replay request, validated.
fn parse_replay(
    obj: &Map<String, Value>,
    workspace: WorkspaceId,
) -> Result<(ReplayFilter, i64), ApiError> {
    let mut errors = Vec::new();
    let mut text = |name: &str| match string_field(obj, name) {
        Ok(v) => v.map(str::to_owned),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let (status, since, until, connection, rule) = (
        text("status"),
        text("since"),
        text("until"),
        text("connection"),
        text("rule"),
    );
    let status = match status.as_deref() {
        None => {
            errors.push(FieldError::new("status", "is required"));
            None
        }
        Some(s @ ("failed" | "canceled" | "retrying")) => DeliveryStatus::parse(s),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "must be one of failed, canceled, retrying",
            ));
            None
        }
    };
    let mut time = |name: &str,
                    raw: Option<String>,
                    default: Option<chrono::DateTime<chrono::Utc>>| match raw {
        None => {
            if default.is_none() {
                errors.push(FieldError::new(name, "is required"));
            }
            default
        }
        Some(raw) => match chrono::DateTime::parse_from_rfc3339(&raw) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                errors.push(FieldError::new(name, "must be an RFC 3339 timestamp"));
                None
            }
        },
    };
    let since = time("since", since, None);
    let until = time("until", until, Some(crate::domain::now()));
    let mut id = |name: &str, raw: Option<String>| match raw.map(|r| Uuid::parse_str(&r)) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            errors.push(FieldError::new(name, "must be a UUID"));
            None
        }
    };
    let connection = id("connection", connection).map(ConnectionId);
    let rule = id("rule", rule).map(RuleId);
    let limit = match obj.get("limit") {
        None | Some(Value::Null) => REPLAY_MAX,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=REPLAY_MAX).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "must be an integer from 1 to 10000",
                ));
                REPLAY_MAX
            }
        },
    };
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        errors.push(FieldError::new("until", "must be later than since"));
    }
    match (status, since, until) {
        (Some(status), Some(since), Some(until)) if errors.is_empty() => Ok((
            ReplayFilter {
                workspace,
                status,
                since,
                until,
                connection,
                rule,
            },
            limit,
        )),
        _ => Err(ApiError::validation(errors)),
    }
}

/// (+) Requeues the workspace's rule events in `status` (`failed`, `canceled`, or `retrying` to
/// hurry waiting and parked ones) created in `[since, until)` (`until` defaults to now),
/// optionally of one connection or rule: at most 10,000 per call (`limit` lowers that), oldest
/// first; `has_more` says whether to call again. Send Test Event's records are left alone.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/replay", tag = "events", params(("id" = Uuid, Path)),
    request_body(content = Object, description = "{status, since, until?, connection?, rule?, limit?}"),
    responses((status = 200, body = ReplayAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let ws = WorkspaceId(parse_id(&id, "workspace")?);
    state.require_workspace(caller.org(), ws).await?;
    let (filter, limit) = parse_replay(json_object(&body)?, ws)?;
    let done = state
        .store
        .replay(caller.org(), &filter, crate::domain::now(), limit)
        .await?;
    tracing::info!(workspace.id = %ws, status = filter.status.as_str(), count = done.count,
        has_more = done.has_more, "replay requeued deliveries");
    if done.count > 0 {
        state.delivery_wake.notify_one();
    }
    Ok(Json(ReplayAnswer {
        count: done.count,
        has_more: done.has_more,
    }))
}
