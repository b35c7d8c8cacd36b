//! Workspaces: list, create, get (with the publishable key), update, rotate the publishable key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::keys::generate_publishable_key;
use crate::domain::{OrganizationId, PublishableKey, PublishableKeyId, Workspace, WorkspaceId};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::http::AppState;
use crate::http::auth::Machine;
use crate::http::extract::{JsonBody, MAX_BODY, QueryMap, json_object, parse_id, string_field};
use crate::http::pagination::{Page, PageParams};
use crate::storage::StorageError;

/// A workspace as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceObject {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Workspace> for WorkspaceObject {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id.0,
            name: w.name,
            description: w.description,
            created_at: crate::http::timestamp(w.created_at),
            updated_at: crate::http::timestamp(w.updated_at),
        }
    }
}

/// `{"workspace": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceEnvelope {
    pub workspace: WorkspaceObject,
}

/// The workspace's publishable key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishableKeyObject {
    #[schema(example = "mesh_pub_…")]
    pub public_key: String,
    pub name: String,
}

/// A workspace with its active publishable key.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceWithKey {
    #[serde(flatten)]
    pub workspace: WorkspaceObject,
    pub publishable_key: Option<PublishableKeyObject>,
}

/// `POST /workspaces` body.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct WorkspaceInput {
    /// 3–50 characters of `^[a-zA-Z0-9 _-]+$`.
    name: String,
    /// At most 1,024 characters.
    description: Option<String>,
}

fn check_name(name: &str) -> Result<(), FieldError> {
    let len = name.chars().count();
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-'));
    if !(3..=50).contains(&len) || !chars_ok {
        return Err(FieldError::new(
            "name",
            "must be 3 to 50 characters of letters, digits, spaces, _ and -",
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), FieldError> {
    if d.contains('\0') {
        return Err(FieldError::new(
            "description",
            "must not contain the NUL character (U+0000)",
        ));
    }
    if d.chars().count() > 1024 {
        return Err(FieldError::new(
            "description",
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

fn name_taken(e: StorageError) -> ApiError {
    match e {
        StorageError::Conflict(_) => ApiError::conflict(
            "workspace_name_taken",
            "the organization already has a workspace with this name",
        ),
        other => other.into(),
    }
}

/// Makes a new active publishable key for a workspace.
pub fn new_publishable_key(org: OrganizationId, workspace: &Workspace) -> PublishableKey {
    PublishableKey {
        id: PublishableKeyId::new_v7(),
        organization_id: org,
        workspace_id: workspace.id,
        public_key: generate_publishable_key(workspace.id),
        name: format!("{} publishable key", workspace.name),
        created_at: crate::domain::now(),
    }
}

async fn with_key(
    state: &AppState,
    org: OrganizationId,
    w: Workspace,
) -> Result<WorkspaceWithKey, ApiError> {
    let key = state.store.active_publishable_key(org, w.id).await?;
    Ok(WorkspaceWithKey {
        workspace: w.into(),
        publishable_key: key.map(|k| PublishableKeyObject {
            public_key: k.public_key,
            name: k.name,
        }),
    })
}

/// Lists the organization's workspaces, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces",
    params(("limit" = Option<i64>, Query, description = "1–200, default 50"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<WorkspaceObject>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: Machine,
    query: QueryMap,
) -> Result<Json<Page<WorkspaceObject>>, ApiError> {
    let params = PageParams::from_query(&query)?;
    let rows = state
        .store
        .list_workspaces(caller.org(), params.request())
        .await?;
    Ok(Json(params.page(rows, |w| w.id.0, WorkspaceObject::from)))
}

/// Creates a workspace (and its publishable key).
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = WorkspaceInput,
    responses((status = 201, body = WorkspaceEnvelope), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "Duplicate name", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: Machine,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<(StatusCode, Json<WorkspaceEnvelope>), ApiError> {
    let obj = json_object(&body)?;
    let mut errors = Vec::new();
    let name = match string_field(obj, "name") {
        Ok(Some(n)) => {
            if let Err(e) = check_name(n) {
                errors.push(e);
            }
            Some(n.to_owned())
        }
        Ok(None) => {
            errors.push(FieldError::new("name", "is required"));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let description = match string_field(obj, "description") {
        Ok(d) => {
            if let Some(Err(e)) = d.map(check_description) {
                errors.push(e);
            }
            d.map(str::to_owned)
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = crate::domain::now();
    let workspace = Workspace {
        id: WorkspaceId::new_v7(),
        organization_id: caller.org(),
        name: name.expect("validated"),
        description,
        created_at: now,
        updated_at: now,
    };
    let key = new_publishable_key(caller.org(), &workspace);
    state
        .store
        .create_workspace(&workspace, &key)
        .await
        .map_err(name_taken)?;
    tracing::info!(workspace.id = %workspace.id, "workspace created");
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceEnvelope {
            workspace: workspace.into(),
        }),
    ))
}

/// One workspace with its publishable key.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}", tag = "workspaces",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WorkspaceWithKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceWithKey>, ApiError> {
    let id = WorkspaceId(parse_id(&id, "workspace")?);
    let w = state
        .store
        .get_workspace(caller.org(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(with_key(&state, caller.org(), w).await?))
}

/// Updates name and description (an omitted `description` is kept, `null` clears it).
#[utoipa::path(put, path = "/api/v1/workspaces/{id}", tag = "workspaces", request_body = WorkspaceInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WorkspaceObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn update_workspace(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<MAX_BODY>,
) -> Result<Json<WorkspaceObject>, ApiError> {
    let id = WorkspaceId(parse_id(&id, "workspace")?);
    let obj = json_object(&body)?;
    let mut errors = Vec::new();
    let name = match string_field(obj, "name") {
        Ok(n) => {
            if let Some(Err(e)) = n.map(check_name) {
                errors.push(e);
            }
            n
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let description = match string_field(obj, "description") {
        Ok(d) => {
            if let Some(Err(e)) = d.map(check_description) {
                errors.push(e);
            }
            d
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let current = state
        .store
        .get_workspace(caller.org(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    let name = name.unwrap_or(&current.name);
    let description = if obj.contains_key("description") {
        description
    } else {
        current.description.as_deref()
    };
    let updated = state
        .store
        .update_workspace(caller.org(), id, name, description, crate::domain::now())
        .await
        .map_err(name_taken)?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(updated.into()))
}

/// Replaces the workspace's publishable key; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/publishable-key/rotate", tag = "workspaces",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The workspace with its new key", body = WorkspaceWithKey),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub async fn rotate_publishable_key(
    State(state): State<AppState>,
    caller: Machine,
    Path(id): Path<String>,
    crate::http::extract::OptionalJsonBody(_): crate::http::extract::OptionalJsonBody,
) -> Result<Json<WorkspaceWithKey>, ApiError> {
    let id = WorkspaceId(parse_id(&id, "workspace")?);
    let w = state
        .store
        .get_workspace(caller.org(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    let key = new_publishable_key(caller.org(), &w);
    if !state
        .store
        .rotate_publishable_key(caller.org(), id, &key)
        .await?
    {
        return Err(ApiError::not_found("workspace"));
    }
    tracing::info!(workspace.id = %id, "publishable key rotated");
    Ok(Json(with_key(&state, caller.org(), w).await?))
}
