//! Lists and memberships: `GET /lists` (filter by name), `GET /lists/{id}`, `POST /contactLists`
//! (subscribe / unsubscribe), `GET /contacts/{id}/contactLists`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{
    Answer, IdPath, Op, Params, found, id_text, meta, parse_body, reply, sort_by_name, wrapped,
};
use crate::sandbox::accounts::Account;
use crate::sandbox::data::record_id;
use crate::sandbox::errors::{AcError, FieldError};
use crate::sandbox::records::{ContactListInput, Written};
use crate::sandbox::render::Render;

const NO_LIST_PERMISSION: &str = "You do not have permission to view lists.";

/// `GET /lists`: `filters[name]` (case-insensitive contains) or `filters[name][op]`,
/// `orders[name]`, `limit`/`offset`.
pub async fn list(Extension(account): Extension<Arc<Account>>, params: Params) -> Answer {
    if account.restricted() {
        return Err(AcError::Permission(NO_LIST_PERMISSION));
    }
    let filters = params.text_filters("name", Op::Contains);
    let data = account.data();
    let mut lists: Vec<_> = data
        .lists
        .values()
        .filter(|l| filters.iter().all(|f| f.matches(&l.name)))
        .collect();
    let term = filters.first().map(|f| f.value.as_str());
    sort_by_name(&mut lists, params.order("name"), term, |l| (l.id, &l.name));
    let (total, lists) = params.page().of(lists);
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "lists": lists.iter().map(|l| render.list(l)).collect::<Vec<_>>(),
            "meta": meta(total),
        }),
    )
}

/// `GET /lists/{id}`.
pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    if account.restricted() {
        return Err(AcError::Permission(NO_LIST_PERMISSION));
    }
    let data = account.data();
    let list = found(&data.lists, "_List", &id)?;
    let render = Render { api: &account.api };
    reply(StatusCode::OK, json!({ "list": render.list(list) }))
}

/// `POST /contactLists`: 201 for a new (contact, list) membership, 200 when it changes an existing
/// one (same id); status 1 subscribes (again), 2 unsubscribes. The contact is side-loaded. An
/// unknown list and/or contact is a 422 listing each.
pub async fn subscribe(Extension(account): Extension<Arc<Account>>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let cl = wrapped(&body, "contactList");
    let attr = |k: &str| cl.and_then(|c| c.get(k));
    let status_echo = attr("status").cloned().unwrap_or_else(|| json!(""));
    let status = match &status_echo {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::Number(n) => Some(n.as_u64().and_then(|n| u8::try_from(n).ok())),
        Value::String(s) => Some(s.trim().parse::<u8>().ok()),
        _ => Some(None),
    };
    let status = match status {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => return Err(AcError::Validation(vec![FieldError::invalid_list_status()])),
    };
    let input = ContactListInput {
        contact: id_text(attr("contact")).map_or(0, |c| record_id(&c)),
        list: id_text(attr("list")).map_or(0, |l| record_id(&l)),
        status,
        status_echo,
        sourceid_echo: attr("sourceid").cloned().unwrap_or_else(|| json!("0")),
    };
    let mut data = account.data();
    let (id, written) = data.set_contact_list(input, account.clock.now())?;
    let render = Render { api: &account.api };
    let row = &data.contact_lists[&id];
    let contact = &data.contacts[&row.contact];
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    };
    reply(
        status,
        json!({
            "contacts": [render.contact_item(contact)],
            "contactList": render.contact_list_written(row, contact),
        }),
    )
}

/// `GET /contacts/{id}/contactLists`: the contact's memberships; `status` is a string here.
pub async fn of_contact(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let data = account.data();
    let contact = found(&data.contacts, "Subscriber", &id)?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "contactLists": data
                .contact_lists_of(contact.id)
                .map(|cl| render.contact_list(cl, contact))
                .collect::<Vec<_>>(),
        }),
    )
}
