//! The ActiveCampaign endpoints of one account (activecampaign-api.md §3), one file per resource,
//! and what they share: body and query parsing, pagination, text filters and ordering.
//!
//! Every route sits under `/{account}/api/3`; the gate in front has already found the account,
//! checked the token and counted the request, and hands the account over as an extension.

mod contact_tags;
mod contacts;
mod fields;
mod lists;
mod tags;

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::data::record_id;
use super::errors::AcError;

/// What an endpoint answers.
type Answer = Result<Response, AcError>;

/// `/{account}/api/3<path>`.
fn at(path: &str) -> String {
    format!("/{{account}}/api/3{path}")
}

/// The endpoints, without the gate.
pub fn router() -> Router {
    Router::new()
        .route(&at("/contact/sync"), post(contacts::sync))
        .route(&at("/contacts"), get(contacts::list).post(contacts::create))
        .route(
            &at("/contacts/{id}"),
            get(contacts::get_one)
                .put(contacts::update)
                .delete(contacts::delete),
        )
        .route(
            &at("/contacts/{id}/contactTags"),
            get(contact_tags::of_contact),
        )
        .route(&at("/contacts/{id}/contactLists"), get(lists::of_contact))
        .route(&at("/tags"), get(tags::list).post(tags::create))
        .route(
            &at("/tags/{id}"),
            get(tags::get_one).put(tags::update).delete(tags::delete),
        )
        .route(
            &at("/contactTags"),
            get(contact_tags::list).post(contact_tags::create),
        )
        .route(
            &at("/contactTags/{id}"),
            get(contact_tags::get_one).delete(contact_tags::delete),
        )
        .route(&at("/lists"), get(lists::list))
        .route(&at("/lists/{id}"), get(lists::get_one))
        .route(&at("/contactLists"), post(lists::subscribe))
        .route(&at("/fields"), get(fields::list))
        .fallback(|| async { AcError::NoRoute })
}

/// The `{id}` of a path (the account segment is ignored).
#[derive(Debug, serde::Deserialize)]
struct IdPath {
    id: String,
}

/// The record with a path's `id`, or the family C 404 naming `model`.
fn found<'a, T>(
    records: &'a BTreeMap<u64, T>,
    model: &'static str,
    id: &str,
) -> Result<&'a T, AcError> {
    records
        .get(&record_id(id))
        .ok_or_else(|| AcError::not_found(model, id))
}

/// The answer to a delete by id: 200 `{}`, or the family C 404 naming `model`.
fn deleted(existed: bool, model: &'static str, id: &str) -> Answer {
    if existed {
        reply(StatusCode::OK, json!({}))
    } else {
        Err(AcError::not_found(model, id))
    }
}

/// A JSON answer.
fn reply(status: StatusCode, body: Value) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

/// The request body as JSON; an empty body is `null`, a malformed one is the bare 400 `{}`.
fn parse_body(bytes: &Bytes) -> Result<Value, AcError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|_| AcError::BadRequest)
}

/// The object under the singular key every write wraps its resource in.
fn wrapped<'a>(body: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    body.get(key).and_then(Value::as_object)
}

/// A string or number attribute as text (ids may come either way); anything else is absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-empty id attribute.
fn id_text(v: Option<&Value>) -> Option<String> {
    text(v).filter(|s| !s.trim().is_empty())
}

/// The query string's pairs, decoded. Unknown keys are simply never asked for, which is how the
/// real API treats misspelled parameters.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let pairs = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self(pairs))
    }
}

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` (default 20, at most 100; nonsense reads as the default) and `offset`.
    fn page(&self) -> Page {
        let limit = match self.get("limit").and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(n) if n > 0 => n.min(MAX_LIMIT as i64) as usize,
            _ => DEFAULT_LIMIT,
        };
        let offset = self
            .get("offset")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        Page { limit, offset }
    }

    /// The text filters on `field`: `filters[field][op]=v`, and `filters[field]=v` read as
    /// `plain`. Unknown operators are ignored.
    fn text_filters(&self, field: &str, plain: Op) -> Vec<TextFilter> {
        let bare = format!("filters[{field}]");
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&bare)?;
                let op = if rest.is_empty() {
                    plain
                } else {
                    Op::parse(rest.strip_prefix('[')?.strip_suffix(']')?)?
                };
                Some(TextFilter {
                    op,
                    value: v.to_lowercase(),
                })
            })
            .collect()
    }

    /// `orders[field]`.
    fn order(&self, field: &str) -> Option<Order> {
        match self
            .get(&format!("orders[{field}]"))?
            .to_ascii_lowercase()
            .as_str()
        {
            "weight" => Some(Order::Weight),
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }
}

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// One page of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    limit: usize,
    offset: usize,
}

impl Page {
    /// The page's items and the collection's total.
    fn of<T>(self, items: Vec<T>) -> (usize, Vec<T>) {
        let total = items.len();
        let page = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        (total, page)
    }
}

/// `meta` of a plain collection: the total is a string.
fn meta(total: usize) -> Value {
    json!({ "total": total.to_string() })
}

/// A comparison of `filters[…][op]`, case-insensitive like the MySQL collation behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Contains,
    StartsWith,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "contains" => Self::Contains,
            "starts_with" => Self::StartsWith,
            _ => return None,
        })
    }
}

/// One `filters[field][op]=value`.
#[derive(Debug, Clone)]
struct TextFilter {
    op: Op,
    /// Lower-cased.
    value: String,
}

impl TextFilter {
    fn matches(&self, s: &str) -> bool {
        let s = s.to_lowercase();
        let v = self.value.as_str();
        match self.op {
            Op::Eq => s == v,
            Op::Neq => s != v,
            Op::Lt => s.as_str() < v,
            Op::Lte => s.as_str() <= v,
            Op::Gt => s.as_str() > v,
            Op::Gte => s.as_str() >= v,
            Op::Contains => s.contains(v),
            Op::StartsWith => s.starts_with(v),
        }
    }
}

/// `orders[field]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Exact match first, then prefix matches, then the rest (needs a search term).
    Weight,
    Asc,
    Desc,
}

/// Sorts `(id, name)` rows by `order` (id order when none), `term` being the search text.
fn sort_by_name<T>(
    rows: &mut [T],
    order: Option<Order>,
    term: Option<&str>,
    key: impl Fn(&T) -> (u64, &str),
) {
    match order {
        None => rows.sort_by_key(|r| key(r).0),
        Some(Order::Asc) => rows.sort_by_cached_key(|r| (key(r).1.to_lowercase(), key(r).0)),
        Some(Order::Desc) => {
            rows.sort_by_cached_key(|r| (key(r).1.to_lowercase(), key(r).0));
            rows.reverse();
        }
        Some(Order::Weight) => {
            let term = term.unwrap_or_default().to_lowercase();
            rows.sort_by_cached_key(|r| {
                let (id, name) = key(r);
                let name = name.to_lowercase();
                let weight = if name == term {
                    0
                } else if name.starts_with(&term) {
                    1
                } else {
                    2
                };
                (weight, id)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params(
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    #[test]
    fn limit_defaults_to_20_and_is_capped_at_100() {
        assert_eq!(
            params("").page(),
            Page {
                limit: 20,
                offset: 0
            }
        );
        assert_eq!(
            params("limit=500&offset=40").page(),
            Page {
                limit: 100,
                offset: 40
            }
        );
        assert_eq!(
            params("limit=abc&offset=-3").page(),
            Page {
                limit: 20,
                offset: 0
            }
        );
        assert_eq!(params("limit=0").page().limit, 20);
    }

    #[test]
    fn filters_read_operators_and_ignore_unknown_ones() {
        let p =
            params("filters%5Bname%5D%5Bstarts_with%5D=New&filters[name][bogus]=x&filters[name]=s");
        let f = p.text_filters("name", Op::Contains);
        assert_eq!(f.len(), 2);
        assert!(f[0].matches("newsletter") && !f[0].matches("The News"));
        assert!(f[1].matches("NewS"));
    }

    #[test]
    fn weight_order_puts_exact_then_prefix_matches_first() {
        let mut rows = vec![(1, "Super VIP"), (2, "VIP Gold"), (3, "vip"), (4, "Other")];
        sort_by_name(&mut rows, Some(Order::Weight), Some("VIP"), |r| (r.0, r.1));
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 2, 1, 4]);
    }
}
