//! The control API under `/__sandbox` (JSON in and out): accounts, seeding, faults, state,
//! request logs and resets. It is not rate limited, needs no token and is never logged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::accounts::{Account, Registry};
use super::faults::Fault;
use super::options::{AccountOptions, AccountUpdate, SandboxError};

type Shared = State<Arc<Registry>>;

/// The control routes, with the registry as state.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/__sandbox/reset", post(reset_all))
        .route(
            "/__sandbox/accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/__sandbox/accounts/{name}",
            get(get_account)
                .patch(update_account)
                .delete(delete_account),
        )
        .route("/__sandbox/accounts/{name}/tags", post(seed_tag))
        .route("/__sandbox/accounts/{name}/lists", post(seed_list))
        .route("/__sandbox/accounts/{name}/fields", post(seed_field))
        .route(
            "/__sandbox/accounts/{name}/faults",
            get(list_faults).post(inject_fault).delete(clear_faults),
        )
        .route("/__sandbox/accounts/{name}/state", get(state))
        .route("/__sandbox/accounts/{name}/contacts/{email}", get(contact))
        .route(
            "/__sandbox/accounts/{name}/requests",
            get(request_log).delete(clear_request_log),
        )
        .route("/__sandbox/accounts/{name}/reset", post(reset_account))
        .with_state(registry)
}

/// A control API failure: `{"error":"…"}` with 400, 404 or 409.
#[derive(Debug)]
enum ControlError {
    BadRequest(String),
    NotFound(String),
    Sandbox(SandboxError),
}

impl From<SandboxError> for ControlError {
    fn from(e: SandboxError) -> Self {
        Self::Sandbox(e)
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Sandbox(e) => (
                match e {
                    SandboxError::UnknownAccount(_) => StatusCode::NOT_FOUND,
                    SandboxError::AccountExists(_) | SandboxError::Conflict(_) => {
                        StatusCode::CONFLICT
                    }
                    SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
                },
                e.to_string(),
            ),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

type Answer = Result<Response, ControlError>;

fn ok(status: StatusCode, body: impl serde::Serialize) -> Answer {
    Ok((status, Json(body)).into_response())
}

/// Parses a JSON body; an empty body reads as `{}`.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ControlError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ControlError::BadRequest(format!("invalid body: {e}")))
}

fn account(registry: &Registry, name: &str) -> Result<Arc<Account>, ControlError> {
    Ok(registry.get(name)?)
}

/// `POST /__sandbox/reset`: only the accounts made at start remain, empty.
async fn reset_all(State(registry): Shared) -> Answer {
    registry.reset();
    ok(StatusCode::OK, json!({ "accounts": registry.list() }))
}

/// `GET /__sandbox/accounts`.
async fn list_accounts(State(registry): Shared) -> Answer {
    ok(StatusCode::OK, registry.list())
}

/// `POST /__sandbox/accounts` with [`AccountOptions`]: 201 `{name, token, api_url}`.
async fn create_account(State(registry): Shared, bytes: Bytes) -> Answer {
    let options: AccountOptions = body(&bytes)?;
    ok(StatusCode::CREATED, registry.create(options)?)
}

/// `GET /__sandbox/accounts/{name}`.
async fn get_account(State(registry): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, account(&registry, &name)?.settings())
}

/// `PATCH /__sandbox/accounts/{name}` with [`AccountUpdate`].
async fn update_account(State(registry): Shared, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let update: AccountUpdate = body(&bytes)?;
    ok(StatusCode::OK, account(&registry, &name)?.update(update)?)
}

/// `DELETE /__sandbox/accounts/{name}`.
async fn delete_account(State(registry): Shared, Path(name): Path<String>) -> Answer {
    registry.remove(&name)?;
    ok(StatusCode::OK, json!({}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagSeed {
    name: String,
    #[serde(default = "contact_type")]
    tag_type: String,
    #[serde(default)]
    description: String,
}

fn contact_type() -> String {
    "contact".into()
}

/// `POST /__sandbox/accounts/{name}/tags` `{"name":"VIP","tag_type"?,"description"?}`: 201 `{id,…}`.
async fn seed_tag(State(registry): Shared, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let seed: TagSeed = body(&bytes)?;
    let id = account(&registry, &name)?.seed_tag(&seed.name, &seed.tag_type, &seed.description)?;
    ok(
        StatusCode::CREATED,
        json!({ "id": id, "name": seed.name, "tag_type": seed.tag_type }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSeed {
    name: String,
    #[serde(default)]
    stringid: Option<String>,
}

/// `POST /__sandbox/accounts/{name}/lists` `{"name":"Newsletter","stringid"?}`: 201 `{id,name}`.
async fn seed_list(State(registry): Shared, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let seed: ListSeed = body(&bytes)?;
    let id = account(&registry, &name)?.seed_list(&seed.name, seed.stringid.as_deref());
    ok(StatusCode::CREATED, json!({ "id": id, "name": seed.name }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSeed {
    title: String,
    #[serde(default)]
    perstag: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// `POST /__sandbox/accounts/{name}/fields` `{"title":"Plan","perstag"?,"type"?}`: 201 `{id,title}`.
async fn seed_field(State(registry): Shared, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let seed: FieldSeed = body(&bytes)?;
    let id = account(&registry, &name)?.seed_field(
        &seed.title,
        seed.perstag.as_deref(),
        seed.kind.as_deref(),
    );
    ok(
        StatusCode::CREATED,
        json!({ "id": id, "title": seed.title }),
    )
}

/// `GET /__sandbox/accounts/{name}/faults`: the pending faults, in order.
async fn list_faults(State(registry): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, account(&registry, &name)?.pending_faults())
}

/// `POST /__sandbox/accounts/{name}/faults` with one fault or an array of them: 201 with the
/// pending faults.
async fn inject_fault(State(registry): Shared, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let value: Value = body(&bytes)?;
    let faults = match value {
        Value::Array(_) => serde_json::from_value::<Vec<Fault>>(value),
        _ => serde_json::from_value::<Fault>(value).map(|f| vec![f]),
    }
    .map_err(|e| ControlError::BadRequest(format!("invalid fault: {e}")))?;
    let account = account(&registry, &name)?;
    for fault in faults {
        account.push_fault(fault);
    }
    ok(StatusCode::CREATED, account.pending_faults())
}

/// `DELETE /__sandbox/accounts/{name}/faults`.
async fn clear_faults(State(registry): Shared, Path(name): Path<String>) -> Answer {
    account(&registry, &name)?.clear_faults();
    ok(StatusCode::OK, json!({}))
}

/// `GET /__sandbox/accounts/{name}/state`: contacts with their tags and lists, tags, lists, fields.
async fn state(State(registry): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, account(&registry, &name)?.data().snapshot())
}

/// `GET /__sandbox/accounts/{name}/contacts/{email}`: one contact's state (email in any case).
async fn contact(State(registry): Shared, Path((name, email)): Path<(String, String)>) -> Answer {
    let account = account(&registry, &name)?;
    let found = {
        let data = account.data();
        data.contact_by_email(&email).map(|c| data.contact_state(c))
    };
    match found {
        Some(c) => ok(StatusCode::OK, c),
        None => Err(ControlError::NotFound(format!(
            "no contact with email {email:?}"
        ))),
    }
}

/// `GET /__sandbox/accounts/{name}/requests`: the request log, ordered by time.
async fn request_log(State(registry): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, account(&registry, &name)?.request_log())
}

/// `DELETE /__sandbox/accounts/{name}/requests`.
async fn clear_request_log(State(registry): Shared, Path(name): Path<String>) -> Answer {
    account(&registry, &name)?.clear_log();
    ok(StatusCode::OK, json!({}))
}

/// `POST /__sandbox/accounts/{name}/reset`: empties the account; settings stay.
async fn reset_account(State(registry): Shared, Path(name): Path<String>) -> Answer {
    account(&registry, &name)?.reset();
    ok(StatusCode::OK, json!({}))
}
