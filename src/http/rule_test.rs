//! (+) Send Test Event: `POST /rules/{id}/test` runs a rule's action now against the real
//! destination with the given (or a sample) payload, stores it in history marked as a test, and
//! answers with the attempt.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::delivery::test_event;
use crate::destinations::activecampaign::{AcDestination, AccountCache};
use crate::domain::{
    AttemptId, AttemptRecord, DeliveryStatus, EventId, NewEvent, NewRuleEvent, OutcomeCode,
    RuleEventId, RuleId,
};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::AppState;
use crate::http::auth::Machine;
use crate::http::events::AttemptObject;
use crate::http::extract::{OptionalJsonBody, parse_id};
use crate::ingest::validate_event;
use crate::rules::EventView;
use crate::storage::operations::{TEST_CREATED_BY, TestDelivery};

/// The payload a test sends when the request gives none.
fn sample_payload() -> Value {
    json!({"email": "handoff-test@example.com", "first_name": "Handoff", "last_name": "Test"})
}

/// Sends a test event through the rule (active or not) and answers with the attempt: outcome,
/// HTTP status and every call made. Bounded at 4 s like every call that reaches the destination
/// while the client waits: past that the attempt is stored as a `timeout` and the answer is a
/// 422 `destination_timeout`. The test does not mark the connection inactive or retry.
#[utoipa::path(post, path = "/api/v1/rules/{id}/test", tag = "rules", params(("id" = uuid::Uuid, Path)),
    request_body(content = Object, description = "{\"payload\"?: {...}}; a sample payload when omitted"),
    responses((status = 200, body = AttemptObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, description = "The destination did not answer in time", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn send_test_event(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<AttemptObject>, ApiError> {
    let org = caller.org();
    let rule_id = RuleId(parse_id(&id, "rule")?);
    let payload = match body {
        None | Some(Value::Null) => sample_payload(),
        Some(Value::Object(mut obj)) => match obj.remove("payload") {
            None | Some(Value::Null) => sample_payload(),
            Some(p) => p,
        },
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        }
    };
    let rule = state
        .store
        .get_rule(org, rule_id)
        .await?
        .ok_or_else(|| ApiError::not_found("rule"))?;
    let connection = state
        .store
        .get_connection(org, rule.connection_id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    // The test event is validated exactly as ingest validates one.
    let item = json!({
        "event": rule.event,
        "resource": rule.resource.clone().unwrap_or_else(|| "global".to_owned()),
        "resource_id": rule.resource_id,
        "payload": payload,
    });
    let valid = validate_event(&item, "", false, None).map_err(ApiError::validation)?;
    let api_url = url::Url::parse(&connection.api_url).map_err(|e| ApiError::internal(&e))?;
    let key = state.connection_key(&connection)?;

    let now = crate::domain::now();
    let event = NewEvent {
        id: EventId::new_v7(),
        organization_id: org,
        workspace_id: rule.workspace_id,
        event: valid.event.clone(),
        resource: valid.resource.clone(),
        resource_id: valid.resource_id.clone(),
        payload: valid.payload.clone(),
        contact_email: valid.contact_email.clone(),
        created_by: TEST_CREATED_BY.to_owned(),
        created_at: now,
        status: DeliveryStatus::Processing,
        rule_events: vec![NewRuleEvent {
            id: RuleEventId::new_v7(),
            rule_id: rule.id,
            connection_id: connection.id,
            integration_type: connection.integration_type.clone(),
        }],
        idempotency: None,
    };
    let template = AttemptRecord {
        id: AttemptId::new_v7(),
        organization_id: org,
        workspace_id: rule.workspace_id,
        event_id: event.id,
        rule_event_id: event.rule_events[0].id,
        attempt_number: 1,
        started_at: now,
        duration_ms: 0,
        outcome_code: OutcomeCode::InternalError,
        http_status: None,
        error: None,
        calls: Vec::new(),
        is_test: true,
    };
    let destination = AcDestination::new(
        state.destination_http.clone(),
        AccountCache::new(),
        Duration::from_millis(state.destinations.timeout_ms),
        state.destinations.allow_private_networks,
    );
    let view = EventView {
        event: &valid.event,
        resource: &valid.resource,
        resource_id: valid.resource_id.as_deref(),
        payload: &valid.payload,
    };
    let bound = Duration::from_millis(state.destinations.interactive_timeout_ms);
    let outcome =
        test_event::send(&destination, &rule, &api_url, key, &view, bound, template).await;
    let test = TestDelivery {
        event: NewEvent {
            created_at: outcome.attempt.started_at,
            ..event
        },
        status: outcome.status,
        attempt: outcome.attempt,
    };
    state.store.insert_test_delivery(&test).await?;
    tracing::info!(rule.id = %rule.id, event.id = %test.event.id, outcome = test.attempt.outcome_code.as_str(),
        duration_ms = test.attempt.duration_ms, "test event sent");
    // Past the bound, or a call that timed out on its own: the client hears 422 either way.
    if outcome.timed_out || test.attempt.outcome_code == OutcomeCode::Timeout {
        return Err(ApiError::unprocessable(
            "destination_timeout",
            "the destination did not answer within 4 seconds; the attempt is stored as a timeout",
        ));
    }
    Ok(Json((&test.attempt).into()))
}
