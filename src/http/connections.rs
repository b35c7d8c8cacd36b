//! Connections (a destination account plus its sealed credentials) and the integration catalog.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::destinations::activecampaign::{self, AcClient, AccountError, NamedId};
use crate::destinations::net::{UrlError, check_url};
use crate::domain::{Connection, ConnectionDeletion, ConnectionId, OrganizationId, WorkspaceId};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::AppState;
use crate::http::auth::Machine;
use crate::http::extract::{JsonBody, MAX_BODY, OptionalJsonBody, QueryMap, json_object, parse_id};
use crate::http::pagination::{Page, PageParams};

/// A connection as the API returns it. The API key is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionObject {
    pub id: Uuid,
    pub workspace: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `{"api_url", "rate_limit_per_second"?}`
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub active: bool,
    /// `authentication_invalid` after the destination rejected the key.
    pub inactive_reason: Option<String>,
    pub hidden: bool,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Connection> for ConnectionObject {
    fn from(c: &Connection) -> Self {
        let mut metadata = json!({"api_url": c.api_url});
        if let Some(limit) = c.rate_limit_per_second {
            metadata["rate_limit_per_second"] = json!(limit);
        }
        Self {
            id: c.id.0,
            workspace: c.workspace_id.0,
            kind: c.integration_type.clone(),
            name: c.name.clone(),
            metadata,
            active: c.active,
            inactive_reason: c.inactive_reason.clone(),
            hidden: c.hidden,
            created_by: c.created_by.clone(),
            created_at: crate::http::timestamp(c.created_at),
            updated_at: crate::http::timestamp(c.updated_at),
        }
    }
}

/// `{"connection": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionEnvelope {
    pub connection: ConnectionObject,
}

/// `POST /connections` body.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ConnectionInput {
    workspace: Uuid,
    /// `activecampaign`
    #[serde(rename = "type")]
    kind: String,
    /// 1–128 characters.
    name: String,
    /// `{"api_url": "https://acct.api-us1.com", "api_key": "…", "rate_limit_per_second"?: 1–1000}`
    #[schema(value_type = Object)]
    metadata: Value,
    hidden: Option<bool>,
}

/// The seal context of a connection's API key.
pub fn api_key_context(id: ConnectionId) -> String {
    format!("connection:{id}")
}

/// What a create or update asked for, validated.
struct Fields {
    name: Option<String>,
    api_url: Option<String>,
    api_key: Option<String>,
    rate_limit: Option<Option<u32>>,
    hidden: Option<bool>,
}

fn parse_fields(obj: &Map<String, Value>, creating: bool) -> Result<Fields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut text = |name: &str, v: Option<&Value>, max: usize, required: bool| -> Option<String> {
        match v {
            None | Some(Value::Null) if required => {
                errors.push(FieldError::new(name, "is required"));
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::new(name, "must not be blank"));
                None
            }
            Some(Value::String(s)) if s.chars().count() > max || s.contains('\0') => {
                errors.push(FieldError::new(
                    name,
                    format!("must be at most {max} characters"),
                ));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    };
    let name = text("name", obj.get("name"), 128, creating);
    let metadata = obj.get("metadata");
    let (api_url, api_key, rate_limit) = match metadata {
        None | Some(Value::Null) if !creating => (None, None, None),
        Some(Value::Object(m)) => {
            let url = text("metadata.api_url", m.get("api_url"), 2048, creating);
            let key = text("metadata.api_key", m.get("api_key"), 512, creating);
            let limit = match m.get("rate_limit_per_second") {
                None | Some(Value::Null) => Some(None),
                Some(v) => match v.as_u64() {
                    Some(n @ 1..=1000) => Some(Some(n as u32)),
                    _ => {
                        errors.push(FieldError::new(
                            "metadata.rate_limit_per_second",
                            "must be an integer from 1 to 1000",
                        ));
                        None
                    }
                },
            };
            (url, key, limit)
        }
        _ => {
            errors.push(FieldError::new(
                "metadata",
                "must be an object with api_url and api_key",
            ));
            (None, None, None)
        }
    };
    let hidden = match obj.get("hidden") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::new("hidden", "must be a boolean"));
            None
        }
    };
    if errors.is_empty() {
        Ok(Fields {
            name,
            api_url,
            api_key,
            rate_limit,
            hidden,
        })
    } else {
        Err(errors)
    }
}

fn account_error(e: AccountError) -> ApiError {
    let (code, msg) = match &e {
        AccountError::Rejected => (
            "destination_auth_failed",
            "ActiveCampaign rejected the API key".to_owned(),
        ),
        AccountError::Timeout => (
            "destination_timeout",
            "the account did not answer within 4 s".to_owned(),
        ),
        AccountError::Unreachable(_) => (
            "destination_unreachable",
            "the account could not be reached at api_url".to_owned(),
        ),
        AccountError::NotAllowed => (
            "destination_not_allowed",
            "api_url resolves to an address that is not allowed".to_owned(),
        ),
        AccountError::Unexpected { status, .. } => (
            "destination_error",
            format!("ActiveCampaign answered HTTP {status}"),
        ),
    };
    tracing::info!(reason = %e, "destination account check failed");
    ApiError::unprocessable(code, msg)
}

fn url_error(e: UrlError) -> ApiError {
    match e {
        UrlError::Invalid => ApiError::validation(vec![FieldError::new(
            "metadata.api_url",
            "must be an absolute http(s) URL without credentials",
        )]),
        UrlError::NotAllowed => ApiError::unprocessable(
            "destination_not_allowed",
            "api_url resolves to a loopback, private or link-local address",
        ),
        UrlError::Unresolvable => {
            ApiError::unprocessable("destination_unreachable", "api_url's host does not resolve")
        }
    }
}

impl AppState {
    /// A client for an account, bounded for calls made while an API client waits.
    pub fn interactive_client(&self, api_url: &url::Url, key: SecretString) -> AcClient {
        AcClient::new(
            self.destination_http.clone(),
            api_url,
            key,
            Duration::from_millis(self.destinations.interactive_timeout_ms),
            self.destinations.allow_private_networks,
        )
    }

    /// The connection's API key, unsealed.
    pub fn connection_key(&self, c: &Connection) -> Result<SecretString, ApiError> {
        let plain = self
            .master_key
            .open(&api_key_context(c.id), &c.api_key_ciphertext)
            .map_err(|e| ApiError::internal(&e))?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|e| ApiError::internal(&e))
    }

    /// Checks that `api_url` is allowed and the key works, within the 4 s interactive bound.
    async fn verify_account(&self, api_url: &str, key: SecretString) -> Result<(), ApiError> {
        let url = check_url(api_url, self.destinations.allow_private_networks)
            .await
            .map_err(url_error)?;
        let client = self.interactive_client(&url, key);
        let bound = Duration::from_millis(self.destinations.interactive_timeout_ms);
        match tokio::time::timeout(bound, activecampaign::check_credentials(&client)).await {
            Ok(result) => result.map_err(account_error),
            Err(_) => Err(account_error(AccountError::Timeout)),
        }
    }
}

async fn find(state: &AppState, org: OrganizationId, raw: &str) -> Result<Connection, ApiError> {
    let id = ConnectionId(parse_id(raw, "connection")?);
    state
        .store
        .get_connection(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))
}

/// Creates a connection after checking its credentials against the account.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections", request_body = ConnectionInput,
    responses((status = 201, body = ConnectionEnvelope), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "Unknown workspace", body = ErrorBody),
              (status = 422, description = "Unsupported type, rejected key, unreachable or disallowed account", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: Machine,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<(StatusCode, Json<ConnectionEnvelope>), ApiError> {
    let obj = json_object(&body)?;
    let mut errors = Vec::new();
    let workspace = match obj
        .get("workspace")
        .and_then(Value::as_str)
        .map(Uuid::parse_str)
    {
        Some(Ok(id)) => Some(WorkspaceId(id)),
        _ => {
            errors.push(FieldError::new(
                "workspace",
                "must be a workspace id (UUID)",
            ));
            None
        }
    };
    let kind = match obj.get("type") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => {
            errors.push(FieldError::new(
                "type",
                "is required (one of: activecampaign)",
            ));
            None
        }
    };
    let fields = parse_fields(obj, true);
    if let Err(e) = &fields {
        errors.extend(e.iter().cloned());
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (workspace, kind, fields) = (
        workspace.expect("checked"),
        kind.expect("checked"),
        fields.expect("checked"),
    );
    if kind != activecampaign::TYPE {
        return Err(ApiError {
            data: vec![FieldError::new("type", "must be one of: activecampaign")],
            ..ApiError::unprocessable(
                "integration_not_supported",
                format!("integration type `{kind}` is not supported; supported: activecampaign"),
            )
        });
    }
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
    let api_url = fields.api_url.expect("required");
    let api_key = fields.api_key.expect("required");
    state
        .verify_account(&api_url, api_key.clone().into())
        .await?;
    let id = ConnectionId::new_v7();
    let now = crate::domain::now();
    let connection = Connection {
        id,
        organization_id: caller.org(),
        workspace_id: workspace,
        integration_type: kind,
        name: fields.name.expect("required"),
        api_url: api_url.trim().to_owned(),
        api_key_ciphertext: state
            .master_key
            .seal(&api_key_context(id), api_key.as_bytes()),
        rate_limit_per_second: fields.rate_limit.flatten(),
        hidden: fields.hidden.unwrap_or(false),
        active: true,
        inactive_reason: None,
        created_by: "machine_key".into(),
        created_at: now,
        updated_at: now,
    };
    state.store.create_connection(&connection).await?;
    tracing::info!(connection.id = %id, workspace.id = %workspace, "connection created");
    Ok((
        StatusCode::CREATED,
        Json(ConnectionEnvelope {
            connection: (&connection).into(),
        }),
    ))
}

async fn list(
    state: &AppState,
    org: OrganizationId,
    workspace: Option<WorkspaceId>,
    query: &QueryMap,
) -> Result<Page<ConnectionObject>, ApiError> {
    let params = PageParams::from_query(query)?;
    let rows = state
        .store
        .list_connections(org, workspace, params.request())
        .await?;
    Ok(params.page(rows, |c| c.id.0, |c| ConnectionObject::from(&c)))
}

/// The organization's connections, newest first.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<ConnectionObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Machine,
    query: QueryMap,
) -> Result<Json<Page<ConnectionObject>>, ApiError> {
    Ok(Json(list(&state, caller.org(), None, &query).await?))
}

/// A workspace's connections, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/connections", tag = "connections",
    params(("id" = Uuid, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<ConnectionObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_workspace_connections(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Page<ConnectionObject>>, ApiError> {
    let ws = WorkspaceId(parse_id(&id, "workspace")?);
    state.require_workspace(caller.org(), ws).await?;
    Ok(Json(list(&state, caller.org(), Some(ws), &query).await?))
}

/// One connection.
#[utoipa::path(get, path = "/api/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConnectionObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<ConnectionObject>, ApiError> {
    Ok(Json((&find(&state, caller.org(), &id).await?).into()))
}

/// Renames or re-points a connection. A `metadata` without `api_key` keeps the stored key; a changed key or
/// URL (or any update of an inactive connection) is checked again, and a working key reactivates it.
#[utoipa::path(put, path = "/api/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path)), request_body = Object,
    responses((status = 200, body = ConnectionObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn update_connection(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<Json<ConnectionObject>, ApiError> {
    let obj = json_object(&body)?;
    let fields = parse_fields(obj, false).map_err(ApiError::validation)?;
    let mut c = find(&state, caller.org(), &id).await?;
    let url_changed = fields
        .api_url
        .as_deref()
        .is_some_and(|u| u.trim() != c.api_url);
    let key = match &fields.api_key {
        Some(k) => SecretString::from(k.clone()),
        None => state.connection_key(&c)?,
    };
    let was_inactive = !c.active;
    if url_changed || fields.api_key.is_some() || !c.active {
        let url = fields.api_url.clone().unwrap_or_else(|| c.api_url.clone());
        state.verify_account(&url, key).await?;
        c.active = true;
        c.inactive_reason = None;
    }
    if let Some(name) = fields.name {
        c.name = name;
    }
    if let Some(url) = fields.api_url {
        c.api_url = url.trim().to_owned();
    }
    if let Some(k) = fields.api_key {
        c.api_key_ciphertext = state.master_key.seal(&api_key_context(c.id), k.as_bytes());
    }
    if let Some(limit) = fields.rate_limit {
        c.rate_limit_per_second = limit;
    }
    if let Some(hidden) = fields.hidden {
        c.hidden = hidden;
    }
    c.updated_at = crate::domain::now();
    let saved = state
        .store
        .update_connection(caller.org(), &c)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    if was_inactive && saved.active {
        // The key works again: deliveries parked on the rejected key resume by themselves.
        let resumed = state
            .store
            .resume_parked(caller.org(), saved.id, crate::domain::now())
            .await?;
        state.delivery_wake.notify_one();
        tracing::info!(connection.id = %saved.id, resumed, "connection reactivated; parked deliveries resumed");
    }
    tracing::info!(connection.id = %saved.id, active = saved.active, "connection updated");
    Ok(Json((&saved).into()))
}

/// Deletes a connection: 409 while rules use it, unless the body is `{"force_delete": true}`.
#[utoipa::path(delete, path = "/api/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, description = "`{id, type}`", body = Object), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "Rules use it", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<Value>, ApiError> {
    let force = match body.as_ref().and_then(|b| b.get("force_delete")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "force_delete",
                "must be a boolean",
            )]));
        }
    };
    let c = find(&state, caller.org(), &id).await?;
    match state
        .store
        .delete_connection(caller.org(), c.id, force)
        .await?
    {
        ConnectionDeletion::NotFound => Err(ApiError::not_found("connection")),
        ConnectionDeletion::InUse { rules } => Err(ApiError::conflict(
            "connection_in_use",
            format!(
                "{rules} rule(s) use this connection; delete them first or send {{\"force_delete\": true}}"
            ),
        )),
        ConnectionDeletion::Deleted { rules_deleted } => {
            state.rule_cache.invalidate(c.workspace_id);
            tracing::info!(connection.id = %c.id, rules_deleted, "connection deleted");
            Ok(Json(json!({"id": c.id, "type": c.integration_type})))
        }
    }
}

/// The account's live tags and lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionsObject {
    #[schema(value_type = Object)]
    pub add_tag: Value,
    #[schema(value_type = Object)]
    pub remove_tag: Value,
    #[schema(value_type = Object)]
    pub add_to_list: Value,
    #[schema(value_type = Object)]
    pub remove_from_list: Value,
    #[schema(value_type = Object)]
    pub sync_contact: Value,
}

/// The account's live tags and lists, read now (bounded at 4 s).
#[utoipa::path(get, path = "/api/v1/connections/{id}/actions", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = ActionsObject), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "The account refused or did not answer", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn connection_actions(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<ActionsObject>, ApiError> {
    let c = find(&state, caller.org(), &id).await?;
    let url = check_url(&c.api_url, state.destinations.allow_private_networks)
        .await
        .map_err(url_error)?;
    let client = state.interactive_client(&url, state.connection_key(&c)?);
    let bound = Duration::from_millis(state.destinations.interactive_timeout_ms);
    let (tags, lists) =
        match tokio::time::timeout(bound, activecampaign::live_actions(&client)).await {
            Ok(r) => r.map_err(account_error)?,
            Err(_) => return Err(account_error(AccountError::Timeout)),
        };
    let tags: &[NamedId] = &tags;
    let lists: &[NamedId] = &lists;
    Ok(Json(ActionsObject {
        add_tag: json!({"tags": tags}),
        remove_tag: json!({"tags": tags}),
        add_to_list: json!({"lists": lists}),
        remove_from_list: json!({"lists": lists}),
        sync_contact: json!({}),
    }))
}

/// The integration catalog: what each type needs and which actions it offers.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "connections",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Object>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_integrations(
    _caller: Machine,
    query: QueryMap,
) -> Result<Json<Page<Value>>, ApiError> {
    let params = PageParams::from_query(&query)?;
    let records: Vec<Value> = crate::destinations::CATALOG
        .iter()
        .take(params.limit as usize)
        .map(|i| {
            let fields: Vec<Value> = i.fields.iter().map(|(key, label, kind, required)| json!({"key": key, "label": label, "type": kind, "required": required})).collect();
            let actions: Map<String, Value> = i.actions.iter().map(|(key, label, noun)| (key.to_string(), json!({"key": key, "label": label, "noun": noun}))).collect();
            json!({"type": i.kind, "name": i.name, "authentication": {"type": "api_key", "fields": fields}, "actions": actions})
        })
        .collect();
    Ok(Json(Page {
        count: records.len(),
        limit: params.limit,
        next_cursor: None,
        records,
    }))
}
