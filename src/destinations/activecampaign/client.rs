//! The ActiveCampaign API v3 client core: one call at a time, each recorded for delivery history
//! (method, path, status, duration, a bounded excerpt — never the `Api-Token`).

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::destinations::net;
/// One HTTP call as delivery history shows it (the domain type; re-exported here for the client's users).
pub use crate::domain::CallRecord;

/// Longest response excerpt kept in history.
pub const EXCERPT_BYTES: usize = 2048;

/// A call that got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("the call timed out")]
    Timeout,
    #[error("network error: {0}")]
    Network(String),
    #[error("the destination address is not allowed")]
    NotAllowed,
}

/// An HTTP answer from ActiveCampaign.
#[derive(Clone, Debug)]
pub struct AcResponse {
    pub status: u16,
    /// The body parsed as JSON; `None` for HTML pages (Cloudflare edge errors) and empty bodies.
    pub json: Option<Value>,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after: Option<u64>,
}

impl AcResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error text, read defensively: `message`, else `error.title`/`error` text, else `errors[0].title`
    /// (with its `detail` when not empty).
    pub fn error_message(&self) -> Option<String> {
        let v = self.json.as_ref()?;
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return Some(m.to_owned());
        }
        match v.get("error") {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(Value::Object(o)) => {
                if let Some(t) = o.get("title").and_then(Value::as_str) {
                    return Some(t.to_owned());
                }
            }
            _ => {}
        }
        // JSON:API errors: the title, with the detail when there is one ("Not Found: Tag not found").
        let first = v.get("errors")?.get(0)?;
        let title = first.get("title").and_then(Value::as_str)?;
        match first.get("detail").and_then(Value::as_str) {
            Some(d) if !d.trim().is_empty() => Some(format!("{title}: {d}")),
            _ => Some(title.to_owned()),
        }
    }
}

/// A client for one account. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct AcClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for AcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl AcClient {
    /// `api_url` is the account URL (`https://acct.api-us1.com`); calls go to `<api_url>/api/3/…`.
    pub fn new(
        http: reqwest::Client,
        api_url: &Url,
        token: SecretString,
        timeout: Duration,
        allow_private: bool,
    ) -> Self {
        let mut base = api_url.clone();
        let path = format!("{}/api/3", base.path().trim_end_matches('/'));
        base.set_path(&path);
        base.set_query(None);
        Self {
            http,
            base,
            token,
            timeout,
            allow_private,
        }
    }

    /// The same account with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes one call. `path` starts with `/` and is relative to `/api/3` (query included).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (CallRecord, Result<AcResponse, CallFailure>) {
        let shown_path = format!("{}{}", self.base.path(), path);
        let url = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        let started = Instant::now();
        let result = self.send(method.clone(), &url, body).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (status, response_excerpt, result) = match result {
            Ok((status, text, retry_after)) => {
                let json = serde_json::from_str::<Value>(&text).ok();
                (
                    Some(status),
                    excerpt(&text),
                    Ok(AcResponse {
                        status,
                        json,
                        retry_after,
                    }),
                )
            }
            Err(failure) => (None, excerpt(&failure.to_string()), Err(failure)),
        };
        let record = CallRecord {
            method: method.as_str().to_owned(),
            path: shown_path,
            status,
            duration_ms,
            response_excerpt,
        };
        (record, result)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String, Option<u64>), CallFailure> {
        if !net::literal_host_allowed(&self.base, self.allow_private) {
            return Err(CallFailure::NotAllowed);
        }
        let mut req = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .header("Api-Token", self.token.expose_secret())
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = resp.text().await.map_err(classify)?;
        Ok((status, text, retry_after))
    }
}

fn classify(e: reqwest::Error) -> CallFailure {
    // The URL can carry an email in its query (`/contacts?email=`); history and messages keep it out.
    let e = e.without_url();
    if e.is_timeout() {
        return CallFailure::Timeout;
    }
    let mut msg = e.to_string();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        if s.to_string().contains("non-public addresses") {
            return CallFailure::NotAllowed;
        }
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    CallFailure::Network(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(json: Value) -> AcResponse {
        AcResponse {
            status: 422,
            json: Some(json),
            retry_after: None,
        }
    }

    #[test]
    fn error_messages_are_read_from_every_family() {
        assert_eq!(
            resp(json!({"message": "No Result found for Tag with id 9"}))
                .error_message()
                .unwrap(),
            "No Result found for Tag with id 9"
        );
        assert_eq!(
            resp(json!({"errors": [{"title": "Contact Email Address is not valid."}]}))
                .error_message()
                .unwrap(),
            "Contact Email Address is not valid."
        );
        assert_eq!(
            resp(json!({"message": "Could not process request", "error": "Duplicate entry"}))
                .error_message()
                .unwrap(),
            "Could not process request"
        );
        assert_eq!(
            resp(json!({"errors": [{"status": 404, "title": "Not Found", "detail": "Tag not found"}]}))
                .error_message()
                .unwrap(),
            "Not Found: Tag not found"
        );
        assert_eq!(resp(json!({})).error_message(), None);
        let html = AcResponse {
            status: 504,
            json: None,
            retry_after: None,
        };
        assert_eq!(html.error_message(), None);
    }

    #[test]
    fn excerpts_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let e = excerpt(&long);
        assert!(e.len() <= EXCERPT_BYTES);
        assert!(long.starts_with(&e));
    }

    #[test]
    fn the_base_path_keeps_a_sandbox_account_prefix() {
        let c = AcClient::new(
            reqwest::Client::new(),
            &Url::parse("http://127.0.0.1:9100/acct1/").unwrap(),
            "t".to_owned().into(),
            Duration::from_secs(1),
            true,
        );
        assert_eq!(c.base.as_str(), "http://127.0.0.1:9100/acct1/api/3");
    }
}
