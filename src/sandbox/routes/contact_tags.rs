//! Tag associations: `POST /contactTags`, `GET /contactTags`, `GET|DELETE /contactTags/{id}`,
//! `GET /contacts/{id}/contactTags`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::json;

use super::{Answer, IdPath, Params, deleted, found, id_text, meta, parse_body, reply, wrapped};
use crate::sandbox::accounts::Account;
use crate::sandbox::data::record_id;
use crate::sandbox::errors::AcError;
use crate::sandbox::render::Render;

/// `POST /contactTags`: 201 with the association and the contact side-loaded. A pair that already
/// exists answers the same way with the existing association (same id, original `cdate`).
pub async fn create(Extension(account): Extension<Arc<Account>>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let ct = wrapped(&body, "contactTag");
    let contact = id_text(ct.and_then(|c| c.get("contact")));
    let tag = id_text(ct.and_then(|c| c.get("tag")));
    let (contact, tag) = match (contact, tag) {
        (Some(c), Some(t)) => (c, t),
        (c, t) => {
            let mut missing = Vec::new();
            if c.is_none() {
                missing.push("contact");
            }
            if t.is_none() {
                missing.push("tag");
            }
            return Err(AcError::MissingAttribute(missing));
        }
    };
    let mut data = account.data();
    let (id, _) =
        data.add_contact_tag(record_id(&contact), record_id(&tag), account.clock.now())?;
    let render = Render { api: &account.api };
    let ct = &data.contact_tags[&id];
    reply(
        StatusCode::CREATED,
        json!({
            "contacts": [render.contact_item(&data.contacts[&ct.contact])],
            "contactTag": render.contact_tag_created(ct),
        }),
    )
}

/// `GET /contactTags`: every association, paged, with `meta.total`.
pub async fn list(Extension(account): Extension<Arc<Account>>, params: Params) -> Answer {
    let data = account.data();
    let (total, page) = params.page().of(data.contact_tags.values().collect());
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "contactTags": page.iter().map(|ct| render.contact_tag(ct)).collect::<Vec<_>>(),
            "meta": meta(total),
        }),
    )
}

/// `GET /contactTags/{id}`.
pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let data = account.data();
    let ct = found(&data.contact_tags, "SubscriberTag", &id)?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({ "contactTag": render.contact_tag(ct) }),
    )
}

/// `DELETE /contactTags/{id}` (the association's id, not the tag's): 200 `{}`.
pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let existed = account.data().delete_contact_tag(record_id(&id));
    deleted(existed, "SubscriberTag", &id)
}

/// `GET /contacts/{id}/contactTags`: the contact's associations, with no `meta`.
pub async fn of_contact(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let data = account.data();
    let contact = found(&data.contacts, "Subscriber", &id)?.id;
    let mut rows: Vec<_> = data.contact_tags_of(contact).collect();
    rows.sort_by_key(|ct| ct.id);
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "contactTags": rows.iter().map(|ct| render.contact_tag(ct)).collect::<Vec<_>>(),
        }),
    )
}
