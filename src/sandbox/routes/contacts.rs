//! Contacts: `POST /contact/sync`, `POST /contacts`, `GET /contacts` (find by email and other
//! filters), `GET|PUT|DELETE /contacts/{id}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Answer, IdPath, Params, deleted, found, id_text, parse_body, reply, text, wrapped};
use crate::sandbox::accounts::Account;
use crate::sandbox::data::{Data, record_id};
use crate::sandbox::errors::{AcError, FieldError};
use crate::sandbox::records::{Contact, ContactInput, Written};
use crate::sandbox::render::Render;

/// The contact attributes of a `{"contact":{…}}` body.
fn contact_input(body: &Value) -> Result<ContactInput, AcError> {
    let Some(c) = wrapped(body, "contact") else {
        return Ok(ContactInput::default());
    };
    let mut field_values = Vec::new();
    if let Some(values) = c.get("fieldValues") {
        for fv in values.as_array().ok_or_else(invalid_field_value)? {
            let field = id_text(fv.get("field")).ok_or_else(invalid_field_value)?;
            let field = field.trim().parse().map_err(|_| invalid_field_value())?;
            let value = match fv.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            field_values.push((field, value));
        }
    }
    Ok(ContactInput {
        email: text(c.get("email")),
        first_name: text(c.get("firstName")),
        last_name: text(c.get("lastName")),
        phone: text(c.get("phone")),
        field_values,
    })
}

fn invalid_field_value() -> AcError {
    AcError::Validation(vec![FieldError::invalid_field_value()])
}

/// `POST /contact/sync`: 201 `{fieldValues?, contact}` for a new email, 200 `{contact}` (the
/// full record) for a known one in any letter case.
pub async fn sync(Extension(account): Extension<Arc<Account>>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let input = contact_input(&body)?;
    let sent_field_values = !input.field_values.is_empty();
    let mut data = account.data();
    let (id, written) = data.sync_contact(input, account.clock.now())?;
    let render = Render { api: &account.api };
    let contact = &data.contacts[&id];
    match written {
        Written::Created => reply(
            StatusCode::CREATED,
            created_body(&render, &data, id, sent_field_values),
        ),
        Written::Updated => reply(
            StatusCode::OK,
            json!({ "contact": render.contact_full(contact, &data) }),
        ),
    }
}

/// `POST /contacts`: 201, or 422 `duplicate` for a known email.
pub async fn create(Extension(account): Extension<Arc<Account>>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let input = contact_input(&body)?;
    let sent_field_values = !input.field_values.is_empty();
    let mut data = account.data();
    let id = data.create_contact(input, account.clock.now())?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::CREATED,
        created_body(&render, &data, id, sent_field_values),
    )
}

fn created_body(render: &Render<'_>, data: &Data, id: u64, with_field_values: bool) -> Value {
    let contact = &data.contacts[&id];
    let mut body = json!({ "contact": render.contact_created(contact, data) });
    if with_field_values {
        body["fieldValues"] = data
            .field_values_of(id)
            .map(|fv| render.field_value(fv))
            .collect();
    }
    body
}

/// `GET /contacts`: `email` (exact, any case), `email_like`, `search`, `id_greater`, `ids`,
/// `tagid`, `listid` + `status`, `orders[id]`, `limit`/`offset`. Nothing found is a 200 with an
/// empty page.
pub async fn list(Extension(account): Extension<Arc<Account>>, params: Params) -> Answer {
    let data = account.data();
    let email_like = params.get("email_like").map(str::to_lowercase);
    let search = params.get("search").map(str::to_lowercase);
    let id_greater = params
        .get("id_greater")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let ids: Option<Vec<u64>> = params
        .get("ids")
        .map(|v| v.split(',').map(record_id).collect());
    let tag = params.get("tagid").map(record_id);
    let list = params.get("listid").map(record_id);
    let status = params
        .get("status")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0);

    // An exact email is a lookup in the email index, not a scan.
    let candidates: Box<dyn Iterator<Item = &Contact>> = match params.get("email") {
        Some(email) => Box::new(data.contact_by_email(email).into_iter()),
        None => Box::new(data.contacts.values()),
    };
    let mut contacts: Vec<_> = candidates
        .filter(|c| {
            email_like
                .as_ref()
                .is_none_or(|e| c.email.to_lowercase().contains(e.as_str()))
        })
        .filter(|c| {
            search.as_ref().is_none_or(|s| {
                [&c.email, &c.first_name, &c.last_name, &c.phone]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s.as_str()))
            })
        })
        .filter(|c| id_greater.is_none_or(|g| c.id > g))
        .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| tag.is_none_or(|t| data.has_tag(c.id, t)))
        .filter(|c| {
            list.is_none_or(|l| {
                data.membership(c.id, l)
                    .is_some_and(|m| status.is_none_or(|s| i64::from(m.status) == s))
            })
        })
        .collect();
    if params
        .get("orders[id]")
        .is_some_and(|o| o.eq_ignore_ascii_case("desc"))
    {
        contacts.reverse();
    }

    let page = params.page();
    let (total, contacts) = page.of(contacts);
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "scoreValues": [],
            "contacts": contacts.iter().map(|c| render.contact_item(c)).collect::<Vec<_>>(),
            "meta": {
                "total": total.to_string(),
                "sortable": true,
                "page_input": {
                    "segmentid": 0,
                    "formid": 0,
                    "listid": list.unwrap_or(0),
                    "tagid": tag.unwrap_or(0),
                    "limit": page.limit,
                    "offset": page.offset,
                    "search": params.get("search"),
                    "sort": null,
                    "seriesid": 0,
                    "waitid": 0,
                    "status": status.unwrap_or(-1),
                    "forceQuery": 0,
                    "cacheid": uuid::Uuid::new_v4().simple().to_string(),
                },
            },
        }),
    )
}

/// `GET /contacts/{id}`: the contact with its lists and field values side-loaded (tags are not).
pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let data = account.data();
    let contact = found(&data.contacts, "Subscriber", &id)?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "contactAutomations": [],
            "contactLists": data
                .contact_lists_of(contact.id)
                .map(|cl| render.contact_list(cl, contact))
                .collect::<Vec<_>>(),
            "deals": [],
            "fieldValues": data
                .field_values_of(contact.id)
                .map(|fv| render.field_value(fv))
                .collect::<Vec<_>>(),
            "geoIps": [],
            "accountContacts": [],
            "contact": render.contact_full(contact, &data),
        }),
    )
}

/// `PUT /contacts/{id}`: 200 `{contact}`.
pub async fn update(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Answer {
    let body = parse_body(&body)?;
    let input = contact_input(&body)?;
    let mut data = account.data();
    let key = found(&data.contacts, "Subscriber", &id)?.id;
    data.update_contact(key, input, account.clock.now())?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({ "contact": render.contact_full(&data.contacts[&key], &data) }),
    )
}

/// `DELETE /contacts/{id}`: 200 `{}`.
pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let existed = account.data().delete_contact(record_id(&id));
    deleted(existed, "Subscriber", &id)
}
