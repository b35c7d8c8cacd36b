//! Injected faults: a FIFO queue per account of "the next N requests get …".
//!
//! Faults stand for trouble in front of the account (Cloudflare's edge, an overloaded origin), so
//! they are applied before authentication and rate limiting and a faulted request is never counted
//! by the limiter.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One queued fault: what happens, to how many of the next requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FaultSpec", into = "FaultSpec")]
pub struct Fault {
    /// What the affected requests get.
    pub kind: FaultKind,
    /// How many consecutive requests it affects (at least 1).
    pub count: u32,
}

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with `status` at once, with a JSON or a Cloudflare-style HTML body.
    Status {
        /// The HTTP status.
        status: u16,
        /// The body's form.
        body: FaultBody,
        /// A `Retry-After` header (seconds), if any.
        retry_after: Option<u64>,
    },
    /// Wait this long, then handle the request normally.
    Latency(Duration),
    /// Close the TCP connection without answering.
    Drop,
}

/// The body of a [`FaultKind::Status`] answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultBody {
    /// `{"message":"<reason>"}`, `application/json`.
    #[default]
    Json,
    /// A Cloudflare error page, `text/html` (error family G).
    Html,
}

impl Fault {
    /// The next request gets `status` with a JSON body.
    pub fn status(status: u16) -> Self {
        Self::once(FaultKind::Status {
            status,
            body: FaultBody::Json,
            retry_after: None,
        })
    }

    /// The next request gets `status` with a Cloudflare-style HTML body.
    pub fn html(status: u16) -> Self {
        Self::once(FaultKind::Status {
            status,
            body: FaultBody::Html,
            retry_after: None,
        })
    }

    /// The next request waits `latency` before being handled normally.
    pub fn latency(latency: Duration) -> Self {
        Self::once(FaultKind::Latency(latency))
    }

    /// The next request's connection is closed without an answer.
    pub fn drop_connection() -> Self {
        Self::once(FaultKind::Drop)
    }

    /// Adds `Retry-After: secs` to a status fault (no effect on other kinds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(secs);
        }
        self
    }

    /// Applies the fault to the next `count` requests instead of one.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count.max(1);
        self
    }

    fn once(kind: FaultKind) -> Self {
        Self { kind, count: 1 }
    }
}

/// The wire form of a fault on the control API: one of
/// `{"status":503,"body":"json"|"html","count":N,"retry_after":S}`, `{"latency_ms":M,"count":N}`,
/// `{"drop":true,"count":N}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<FaultBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
}

impl TryFrom<FaultSpec> for Fault {
    type Error = String;

    fn try_from(spec: FaultSpec) -> Result<Self, String> {
        let count = spec.count.unwrap_or(1);
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        let drop = spec.drop.unwrap_or(false);
        let kind = match (spec.status, spec.latency_ms, drop) {
            (Some(status), None, false) => {
                if !(200..=599).contains(&status) {
                    return Err(format!("status {status} is not between 200 and 599"));
                }
                FaultKind::Status {
                    status,
                    body: spec.body.unwrap_or_default(),
                    retry_after: spec.retry_after,
                }
            }
            (None, Some(ms), false) => FaultKind::Latency(Duration::from_millis(ms)),
            (None, None, true) => FaultKind::Drop,
            _ => {
                return Err(
                    "a fault is exactly one of {\"status\":…}, {\"latency_ms\":…} or {\"drop\":true}"
                        .into(),
                );
            }
        };
        if !matches!(kind, FaultKind::Status { .. })
            && (spec.body.is_some() || spec.retry_after.is_some())
        {
            return Err("body and retry_after only go with status".into());
        }
        Ok(Self { kind, count })
    }
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> Self {
        let mut spec = FaultSpec {
            count: Some(fault.count),
            ..FaultSpec::default()
        };
        match fault.kind {
            FaultKind::Status {
                status,
                body,
                retry_after,
            } => {
                spec.status = Some(status);
                spec.body = Some(body);
                spec.retry_after = retry_after;
            }
            FaultKind::Latency(d) => spec.latency_ms = Some(d.as_millis() as u64),
            FaultKind::Drop => spec.drop = Some(true),
        }
        spec
    }
}

/// The pending faults of one account, applied in order.
#[derive(Debug, Default)]
pub struct FaultQueue {
    pending: VecDeque<Fault>,
}

impl FaultQueue {
    /// Queues a fault behind the ones already pending.
    pub fn push(&mut self, fault: Fault) {
        self.pending.push_back(fault);
    }

    /// Takes the fault for the next request, if any.
    pub fn take(&mut self) -> Option<FaultKind> {
        let front = self.pending.front_mut()?;
        let kind = front.kind.clone();
        front.count -= 1;
        if front.count == 0 {
            self.pending.pop_front();
        }
        Some(kind)
    }

    /// The faults still pending.
    pub fn pending(&self) -> Vec<Fault> {
        self.pending.iter().cloned().collect()
    }

    /// Forgets every pending fault.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// The answer to a request hit by a status fault on account `account`.
pub fn status_response(
    account: &str,
    status: u16,
    body: FaultBody,
    retry_after: Option<u64>,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ray = format!("{}-IAD", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let (content_type, text) = match body {
        FaultBody::Json => {
            let message = code.canonical_reason().unwrap_or("Error");
            (
                "application/json",
                serde_json::json!({ "message": message }).to_string(),
            )
        }
        FaultBody::Html => (
            "text/html; charset=UTF-8",
            cloudflare_page(account, status, &ray),
        ),
    };
    let mut response = (
        code,
        [
            (header::CONTENT_TYPE, content_type),
            (header::SERVER, "cloudflare"),
            (HeaderName::from_static("cf-ray"), ray.as_str()),
        ],
        text,
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Cloudflare's wording for the statuses its edge answers with.
fn cloudflare_title(status: u16) -> &'static str {
    match status {
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable",
        504 => "Gateway time-out",
        520 => "Web server is returning an unknown error",
        521 => "Web server is down",
        522 => "Connection timed out",
        523 => "Origin is unreachable",
        524 => "A timeout occurred",
        other => StatusCode::from_u16(other)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Error"),
    }
}

/// An error page shaped like the one Cloudflare serves in front of `<account>.api-us1.com`.
fn cloudflare_page(account: &str, status: u16, ray: &str) -> String {
    let title = cloudflare_title(status);
    let host = format!("{account}.api-us1.com");
    format!(
        r#"<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>{host} | {status}: {title}</title>
<meta charset="UTF-8" />
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<meta name="robots" content="noindex, nofollow" />
<meta name="viewport" content="width=device-width,initial-scale=1" />
</head>
<body>
<div id="cf-wrapper">
  <div id="cf-error-details" class="p-0">
    <header class="mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-8">
      <h1 class="inline-block sm:block sm:mb-2 font-light text-60 lg:text-4xl text-black-dark leading-tight mr-2">
        <span class="inline-block">{title}</span>
        <span class="code-label">Error code {status}</span>
      </h1>
    </header>
    <div class="my-8 bg-gradient-gray">
      <div class="w-240 lg:w-full mx-auto">
        <div id="cf-host-status" class="cf-error-source relative w-1/3 md:w-full py-15 md:p-0 md:py-8 md:text-left md:border-solid md:border-0 md:border-b md:border-gray-400 overflow-hidden float-left md:float-none text-center">
          <span class="md:block w-full truncate">{host}</span>
          <h3 class="md:inline-block mt-3 md:mt-0 text-2xl text-gray-600 font-light leading-1.3">Host</h3>
          <span class="leading-1.3 text-2xl text-red-error">Error</span>
        </div>
      </div>
    </div>
    <div class="cf-error-footer cf-wrapper w-240 lg:w-full py-10 sm:py-4 sm:px-8 mx-auto text-center sm:text-left border-solid border-0 border-t border-gray-300">
      <p class="text-13">
        <span class="cf-footer-item sm:block sm:mb-1">Cloudflare Ray ID: <strong class="font-semibold">{ray}</strong></span>
        <span class="cf-footer-separator sm:hidden">&bull;</span>
        <span class="cf-footer-item sm:block sm:mb-1">Performance &amp; security by Cloudflare</span>
      </p>
    </div>
  </div>
</div>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_forms_parse_into_the_three_kinds() {
        let f: Fault =
            serde_json::from_str(r#"{"status":504,"body":"html","count":2,"retry_after":3}"#)
                .unwrap();
        assert_eq!(f, Fault::html(504).with_retry_after(3).times(2));
        let f: Fault = serde_json::from_str(r#"{"latency_ms":250}"#).unwrap();
        assert_eq!(f, Fault::latency(Duration::from_millis(250)));
        let f: Fault = serde_json::from_str(r#"{"drop":true,"count":3}"#).unwrap();
        assert_eq!(f, Fault::drop_connection().times(3));
    }

    #[test]
    fn ambiguous_or_empty_faults_are_refused() {
        for bad in [
            r#"{}"#,
            r#"{"status":503,"drop":true}"#,
            r#"{"latency_ms":10,"body":"html"}"#,
            r#"{"status":503,"count":0}"#,
            r#"{"status":99}"#,
            r#"{"status":503,"colour":"red"}"#,
        ] {
            assert!(serde_json::from_str::<Fault>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_queue_applies_faults_in_order_and_counts_them_down() {
        let mut q = FaultQueue::default();
        q.push(Fault::status(500).times(2));
        q.push(Fault::drop_connection());
        assert!(matches!(
            q.take(),
            Some(FaultKind::Status { status: 500, .. })
        ));
        assert_eq!(q.pending()[0].count, 1);
        assert!(matches!(
            q.take(),
            Some(FaultKind::Status { status: 500, .. })
        ));
        assert_eq!(q.take(), Some(FaultKind::Drop));
        assert_eq!(q.take(), None);
    }
}
