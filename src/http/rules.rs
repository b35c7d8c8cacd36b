//! Rules (event → connection action): create, list with filters, get, replace, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{ConnectionId, OrganizationId, Rule, RuleFilter, RuleId, WorkspaceId};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::AppState;
use crate::http::auth::Machine;
use crate::http::extract::{JsonBody, MAX_BODY, OptionalJsonBody, QueryMap, json_object, parse_id};
use crate::http::pagination::{Page, PageParams};
use crate::rules::{parse_conditions, parse_metadata};

/// A rule as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleObject {
    pub id: Uuid,
    pub workspace: Uuid,
    pub connection: Uuid,
    /// The connection's integration type.
    #[serde(rename = "type")]
    pub kind: String,
    pub event: String,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(value_type = Vec<Object>)]
    pub conditions: Value,
    pub active: bool,
    pub hidden: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Rule> for RuleObject {
    fn from(r: &Rule) -> Self {
        Self {
            id: r.id.0,
            workspace: r.workspace_id.0,
            connection: r.connection_id.0,
            kind: r.integration_type.clone(),
            event: r.event.clone(),
            resource: r.resource.clone(),
            resource_id: r.resource_id.clone(),
            metadata: r.metadata.clone(),
            conditions: r.conditions.clone(),
            active: r.active,
            hidden: r.hidden,
            created_by: r.created_by.clone(),
            created_at: crate::http::timestamp(r.created_at),
            updated_at: crate::http::timestamp(r.updated_at),
        }
    }
}

/// `{"rule": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleEnvelope {
    pub rule: RuleObject,
}

/// `POST /rules` body (`PUT` takes the same fields but `workspace`).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RuleInput {
    workspace: Uuid,
    connection: Uuid,
    #[schema(example = "page.completed")]
    event: String,
    resource: Option<String>,
    resource_id: Option<String>,
    active: Option<bool>,
    /// `{"action": "add_tag", "id": "64"}` or `{"action": "add_tag", "tag": "onboarding-step-{{payload.sequence_step}}-done"}`
    #[schema(value_type = Object)]
    metadata: Value,
    /// `[{"path": "payload.page_id", "op": "eq", "value": "page_connect-crm"}]`
    #[schema(value_type = Option<Vec<Object>>)]
    conditions: Option<Value>,
    hidden: Option<bool>,
}

struct RuleFields {
    connection: ConnectionId,
    event: String,
    resource: Option<String>,
    resource_id: Option<String>,
    active: bool,
    hidden: bool,
    metadata: Value,
    conditions: Value,
}

fn optional_text(
    obj: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
    ok: impl Fn(&str) -> bool,
    rule: &str,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if ok(s) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(name, rule));
            None
        }
    }
}

fn flag(obj: &Map<String, Value>, name: &str, default: bool, errors: &mut Vec<FieldError>) -> bool {
    match obj.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(name, "must be a boolean"));
            default
        }
    }
}

fn uuid_field(obj: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    match obj.get(name).and_then(Value::as_str).map(Uuid::parse_str) {
        Some(Ok(id)) => Some(id),
        _ => {
            errors.push(FieldError::new(name, "must be an id (UUID)"));
            None
        }
    }
}

fn parse_rule(obj: &Map<String, Value>) -> Result<RuleFields, ApiError> {
    let mut errors = Vec::new();
    let connection = uuid_field(obj, "connection", &mut errors);
    let event = match obj.get("event") {
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= 128 && !s.contains('\0') =>
        {
            Some(s.clone())
        }
        _ => {
            errors.push(FieldError::new(
                "event",
                "is required: a non-blank event name of at most 128 characters",
            ));
            None
        }
    };
    let resource = optional_text(
        obj,
        "resource",
        &mut errors,
        |s| !s.trim().is_empty() && s.chars().count() <= 128 && !s.contains('\0'),
        "must be a non-blank string of at most 128 characters",
    );
    let resource_id = optional_text(
        obj,
        "resource_id",
        &mut errors,
        |s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        },
        "must match ^[A-Za-z0-9._:-]{1,64}$",
    );
    let active = flag(obj, "active", true, &mut errors);
    let hidden = flag(obj, "hidden", false, &mut errors);
    let action = match obj.get("metadata") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("metadata", "is required"));
            None
        }
        Some(m) => match parse_metadata(m) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
    };
    let conditions = match parse_conditions(obj.get("conditions").unwrap_or(&Value::Null)) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let to_json = |v: Result<Value, serde_json::Error>| v.map_err(|e| ApiError::internal(&e));
    Ok(RuleFields {
        connection: ConnectionId(connection.expect("checked")),
        event: event.expect("checked"),
        resource,
        resource_id,
        active,
        hidden,
        metadata: to_json(serde_json::to_value(action.expect("checked")))?,
        conditions: to_json(serde_json::to_value(conditions.expect("checked")))?,
    })
}

/// The connection must exist in the organization and belong to the rule's workspace (else 404).
async fn connection_type(
    state: &AppState,
    org: OrganizationId,
    workspace: WorkspaceId,
    id: ConnectionId,
) -> Result<String, ApiError> {
    match state.store.get_connection(org, id).await? {
        Some(c) if c.workspace_id == workspace => Ok(c.integration_type),
        _ => Err(ApiError {
            data: vec![FieldError::new(
                "connection",
                "not found in the rule's workspace",
            )],
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "connection_not_found",
                "connection not found in the rule's workspace",
            )
        }),
    }
}

async fn find(state: &AppState, org: OrganizationId, raw: &str) -> Result<Rule, ApiError> {
    let id = RuleId(parse_id(raw, "rule")?);
    state
        .store
        .get_rule(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("rule"))
}

/// Creates a rule.
#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", request_body = RuleInput,
    responses((status = 201, body = RuleEnvelope), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "Unknown workspace, or a connection outside it", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Machine,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<(StatusCode, Json<RuleEnvelope>), ApiError> {
    let obj = json_object(&body)?;
    let mut errors = Vec::new();
    let workspace = uuid_field(obj, "workspace", &mut errors);
    let fields = parse_rule(obj);
    if let Err(e) = &fields {
        errors.extend(e.data.iter().cloned());
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (workspace, fields) = (
        WorkspaceId(workspace.expect("checked")),
        fields.expect("checked"),
    );
    if state
        .store
        .get_workspace(caller.org(), workspace)
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "workspace_not_found",
            "workspace not found",
        ));
    }
    let integration_type =
        connection_type(&state, caller.org(), workspace, fields.connection).await?;
    let now = crate::domain::now();
    let rule = Rule {
        id: RuleId::new_v7(),
        organization_id: caller.org(),
        workspace_id: workspace,
        connection_id: fields.connection,
        integration_type,
        event: fields.event,
        resource: fields.resource,
        resource_id: fields.resource_id,
        metadata: fields.metadata,
        conditions: fields.conditions,
        active: fields.active,
        hidden: fields.hidden,
        created_by: "machine_key".into(),
        created_at: now,
        updated_at: now,
    };
    state.store.create_rule(&rule).await?;
    state.rule_cache.invalidate(workspace);
    tracing::info!(rule.id = %rule.id, workspace.id = %workspace, "rule created");
    Ok((
        StatusCode::CREATED,
        Json(RuleEnvelope {
            rule: (&rule).into(),
        }),
    ))
}

fn filter(query: &QueryMap, workspace: Option<WorkspaceId>) -> RuleFilter {
    let get = |k: &str| query.0.get(k).filter(|v| !v.is_empty()).cloned();
    RuleFilter {
        workspace,
        event: get("event"),
        resource: get("resource"),
        resource_id: get("resource_id"),
    }
}

async fn list(
    state: &AppState,
    org: OrganizationId,
    workspace: Option<WorkspaceId>,
    query: &QueryMap,
) -> Result<Page<RuleObject>, ApiError> {
    let params = PageParams::from_query(query)?;
    let rows = state
        .store
        .list_rules(org, &filter(query, workspace), params.request())
        .await?;
    Ok(params.page(rows, |r| r.id.0, |r| RuleObject::from(&r)))
}

/// The organization's rules, newest first; `event`, `resource`, `resource_id` filter by equality.
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules",
    params(("event" = Option<String>, Query), ("resource" = Option<String>, Query), ("resource_id" = Option<String>, Query),
           ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<RuleObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Machine,
    query: QueryMap,
) -> Result<Json<Page<RuleObject>>, ApiError> {
    Ok(Json(list(&state, caller.org(), None, &query).await?))
}

/// A workspace's rules, newest first, with the same filters.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/rules", tag = "rules",
    params(("id" = Uuid, Path), ("event" = Option<String>, Query), ("resource" = Option<String>, Query), ("resource_id" = Option<String>, Query),
           ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<RuleObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_workspace_rules(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Page<RuleObject>>, ApiError> {
    let ws = WorkspaceId(parse_id(&id, "workspace")?);
    state.require_workspace(caller.org(), ws).await?;
    Ok(Json(list(&state, caller.org(), Some(ws), &query).await?))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = Uuid, Path)),
    responses((status = 200, body = RuleObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<RuleObject>, ApiError> {
    Ok(Json((&find(&state, caller.org(), &id).await?).into()))
}

/// (+) Replaces a rule's fields (its workspace stays).
#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = Uuid, Path)), request_body = RuleInput,
    responses((status = 200, body = RuleObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn update_rule(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<Json<RuleObject>, ApiError> {
    let fields = parse_rule(json_object(&body)?)?;
    let mut rule = find(&state, caller.org(), &id).await?;
    rule.integration_type =
        connection_type(&state, caller.org(), rule.workspace_id, fields.connection).await?;
    rule.connection_id = fields.connection;
    rule.event = fields.event;
    rule.resource = fields.resource;
    rule.resource_id = fields.resource_id;
    rule.metadata = fields.metadata;
    rule.conditions = fields.conditions;
    rule.active = fields.active;
    rule.hidden = fields.hidden;
    rule.updated_at = crate::domain::now();
    let saved = state
        .store
        .update_rule(caller.org(), &rule)
        .await?
        .ok_or_else(|| ApiError::not_found("rule"))?;
    state.rule_cache.invalidate(saved.workspace_id);
    tracing::info!(rule.id = %saved.id, "rule updated");
    Ok(Json((&saved).into()))
}

/// Deletes a rule; answers a short summary.
#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = Uuid, Path)),
    responses((status = 200, description = "`{id, connection, type, event, resource, resource_id}`", body = Object),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    _body: OptionalJsonBody,
) -> Result<Json<Value>, ApiError> {
    let id = RuleId(parse_id(&id, "rule")?);
    let r = state
        .store
        .delete_rule(caller.org(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("rule"))?;
    state.rule_cache.invalidate(r.workspace_id);
    tracing::info!(rule.id = %r.id, "rule deleted");
    Ok(Json(
        json!({"id": r.id, "connection": r.connection_id, "type": r.integration_type,
                   "event": r.event, "resource": r.resource, "resource_id": r.resource_id}),
    ))
}
