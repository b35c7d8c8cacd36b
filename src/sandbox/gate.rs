//! What happens to every request addressed to an account before and after its endpoint runs:
//! find the account from the path prefix, apply a queued fault, check `Api-Token`, ask the rate
//! limiter, then add the `RateLimit-*` headers and log the exchange.
//!
//! The order mirrors the real service: faults stand for the edge in front of it, a request with a
//! bad token cannot be attributed to an account's budget, and the limiter counts only the requests
//! it lets through.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::accounts::{Account, Registry};
use super::conn::Cut;
use super::errors::AcError;
use super::faults::{self, FaultKind};
use super::rate_limit::Decision;
use super::request_log::Entry;

/// Largest request body an account accepts.
const MAX_BODY: usize = 1024 * 1024;

/// The middleware in front of every account endpoint.
pub async fn gate(State(registry): State<Arc<Registry>>, req: Request, next: Next) -> Response {
    let Some((name, rest)) = split_account(req.uri().path()) else {
        return AcError::NoRoute.into_response();
    };
    let Ok(account) = registry.get(name) else {
        let body = json!({ "message": format!("No sandbox account named {name}") });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    let path = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let (mut parts, body) = req.into_parts();
    let mut exchange = Exchange {
        account: &account,
        at: Instant::now(),
        method: parts.method.to_string(),
        path,
        body: Bytes::new(),
        remaining: None,
    };
    match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => exchange.body = bytes,
        Err(_) => return exchange.finish(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
    }

    match account.take_fault() {
        Some(FaultKind::Status {
            status,
            body,
            retry_after,
        }) => {
            let response = faults::status_response(&account.name, status, body, retry_after);
            return exchange.finish(response);
        }
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            exchange.at = Instant::now();
        }
        Some(FaultKind::Drop) => {
            if let Some(ConnectInfo(cut)) = parts.extensions.get::<ConnectInfo<Cut>>() {
                cut.cut();
            }
            account.log(exchange.entry(None));
            // Never sent: the cut connection fails the write and closes.
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        None => {}
    }

    let token = parts.headers.get("api-token").and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| account.token_matches(t)) {
        return exchange.finish(AcError::Forbidden.into_response());
    }

    let (decision, at) = account.admit();
    exchange.at = at;
    match decision {
        Decision::Refused { retry_after } => {
            exchange.remaining = Some(0);
            return exchange.finish(throttled(&account, retry_after));
        }
        Decision::Accepted { remaining } => exchange.remaining = Some(remaining),
        Decision::Unlimited => {}
    }

    parts.extensions.insert(Arc::clone(&account));
    let req = Request::from_parts(parts, Body::from(exchange.body.clone()));
    let response = next.run(req).await;
    exchange.finish(response)
}

/// `/<account>/api/3/…` → (`<account>`, `/api/3/…`).
fn split_account(path: &str) -> Option<(&str, &str)> {
    let path = path.strip_prefix('/')?;
    let (name, rest) = path.split_at(path.find('/').unwrap_or(path.len()));
    (!name.is_empty()).then_some((name, rest))
}

/// The answer over the rate limit: 429 (or 503 for an account set up like the older ones) with
/// `Retry-After`. The 429 body is undocumented; this one is the sandbox's.
fn throttled(account: &Account, retry_after: u64) -> Response {
    let status = account.throttle_status().code();
    let status = StatusCode::from_u16(status).expect("429 or 503");
    let message = status.canonical_reason().unwrap_or("Too Many Requests");
    let mut response = (status, axum::Json(json!({ "message": message }))).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// One request on its way through the gate.
struct Exchange<'a> {
    account: &'a Account,
    at: Instant,
    method: String,
    path: String,
    body: Bytes,
    /// What the limiter said when it counted this request; read afresh otherwise.
    remaining: Option<u32>,
}

impl Exchange<'_> {
    /// Adds the rate-limit headers (when the account has a limit) and logs the answer.
    fn finish(self, mut response: Response) -> Response {
        let (limit, now_remaining) = self.account.rate_limit_status();
        if limit > 0 {
            let remaining = self.remaining.or(now_remaining).unwrap_or(0);
            let headers = response.headers_mut();
            headers.insert("ratelimit-limit", HeaderValue::from(limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
        }
        self.account
            .log(self.entry(Some(response.status().as_u16())));
        response
    }

    fn entry(&self, status: Option<u16>) -> Entry {
        Entry {
            at: self.account.clock.wall(self.at),
            method: self.method.clone(),
            path: self.path.clone(),
            status,
            body: self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_account;

    #[test]
    fn the_first_path_segment_names_the_account() {
        assert_eq!(
            split_account("/acme/api/3/contacts"),
            Some(("acme", "/api/3/contacts"))
        );
        assert_eq!(split_account("/acme"), Some(("acme", "")));
        assert_eq!(split_account("/"), None);
        assert_eq!(split_account("//api"), None);
    }
}
