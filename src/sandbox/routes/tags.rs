//! Tags: `GET /tags` (search, filters, ordering, pages), `POST /tags`, `GET|PUT|DELETE /tags/{id}`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::json;

use super::{
    Answer, IdPath, Op, Params, TextFilter, deleted, found, meta, parse_body, reply, sort_by_name,
    text, wrapped,
};
use crate::sandbox::accounts::Account;
use crate::sandbox::data::record_id;
use crate::sandbox::render::Render;

/// `GET /tags`: `search` (contains), `filters[search][op]`, `orders[search]`, `limit`/`offset`;
/// matching is case-insensitive.
pub async fn list(Extension(account): Extension<Arc<Account>>, params: Params) -> Answer {
    let mut filters = params.text_filters("search", Op::Contains);
    if let Some(search) = params.get("search") {
        filters.push(TextFilter {
            op: Op::Contains,
            value: search.to_lowercase(),
        });
    }
    let data = account.data();
    let mut tags: Vec<_> = data
        .tags
        .values()
        .filter(|t| filters.iter().all(|f| f.matches(&t.name)))
        .collect();
    let term = filters.first().map(|f| f.value.as_str());
    sort_by_name(&mut tags, params.order("search"), term, |t| (t.id, &t.name));
    let (total, tags) = params.page().of(tags);
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({
            "tags": tags.iter().map(|t| render.tag(t)).collect::<Vec<_>>(),
            "meta": meta(total),
        }),
    )
}

/// `POST /tags`: 201 `{tag}`; a name taken in any letter case (same tag type) is the raw
/// database error of family F. Nothing is validated: an empty name is accepted once.
pub async fn create(Extension(account): Extension<Arc<Account>>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let tag = wrapped(&body, "tag");
    let field = |k: &str| tag.and_then(|t| text(t.get(k)));
    let name = field("tag").unwrap_or_default();
    let tag_type = field("tagType").unwrap_or_else(|| "contact".into());
    let description = field("description").unwrap_or_default();
    let mut data = account.data();
    let id = data.create_tag(&name, &tag_type, &description, account.clock.now())?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::CREATED,
        json!({ "tag": render.tag_created(&data.tags[&id]) }),
    )
}

/// `GET /tags/{id}`.
pub async fn get_one(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let data = account.data();
    let tag = found(&data.tags, "Tag", &id)?;
    let render = Render { api: &account.api };
    reply(StatusCode::OK, json!({ "tag": render.tag(tag) }))
}

/// `PUT /tags/{id}`: 200 `{tag}`.
pub async fn update(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
    body: Bytes,
) -> Answer {
    let body = parse_body(&body)?;
    let tag = wrapped(&body, "tag");
    let field = |k: &str| tag.and_then(|t| text(t.get(k)));
    let mut data = account.data();
    let key = found(&data.tags, "Tag", &id)?.id;
    data.update_tag(
        key,
        field("tag").as_deref(),
        field("tagType").as_deref(),
        field("description").as_deref(),
        account.clock.now(),
    )?;
    let render = Render { api: &account.api };
    reply(
        StatusCode::OK,
        json!({ "tag": render.tag(&data.tags[&key]) }),
    )
}

/// `DELETE /tags/{id}`: 200 `{}`, and the tag's associations go with it.
pub async fn delete(
    Extension(account): Extension<Arc<Account>>,
    Path(IdPath { id }): Path<IdPath>,
) -> Answer {
    let existed = account.data().delete_tag(record_id(&id));
    deleted(existed, "Tag", &id)
}
