//! Custom fields: `GET /fields`.

use std::sync::Arc;

use axum::Extension;
use axum::http::StatusCode;
use serde_json::json;

use super::{Answer, Params, meta, reply};
use crate::sandbox::accounts::Account;
use crate::sandbox::errors::AcError;
use crate::sandbox::render::Render;

/// `GET /fields`: the account's custom fields, paged.
pub async fn list(Extension(account): Extension<Arc<Account>>, params: Params) -> Answer {
    if account.restricted() {
        return Err(AcError::Permission(
            "You do not have permission to view fields.",
        ));
    }
    let data = account.data();
    let (total, fields) = params.page().of(data.fields.values().collect());
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "fieldOptions": [],
            "fieldRels": [],
            "fields": fields.iter().map(|f| render.field(f)).collect::<Vec<_>>(),
            "meta": meta(total),
        }),
    )
}
