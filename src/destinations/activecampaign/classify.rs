//! The one place that decides what an ActiveCampaign answer (or the lack of one) means for a delivery
//! attempt: carry on, or stop with an [`Outcome`], an [`OutcomeCode`] and a short human message.
//!
//! - 2xx: carry on.
//! - 429, and 503 *with* `Retry-After` (older accounts throttle that way): throttled.
//! - 503 without `Retry-After` and every other 5xx (HTML edge pages included): transient server error.
//! - 401/403: the key is wrong (`auth_failed`); the connection is parked until fixed.
//! - any other status (4xx, and the odd 1xx/3xx — redirects are not followed): permanent client error.
//! - timeout: transient `timeout`; connection refused/reset/dropped: transient `network_error`.
//! - an address the SSRF policy refuses: permanent `network_error`. The connection's `api_url` (or what
//!   its host resolves to) is configuration, not a blip; retrying for two days would not change it, and
//!   a replay after the operator fixes it is the way back.
//!
//! Messages never carry the token or the payload: only the status and ActiveCampaign's own error text,
//! cut short.

use crate::delivery::retry::Outcome;
use crate::domain::OutcomeCode;

use super::client::{AcResponse, CallFailure};

/// Longest error message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Why an attempt stops before it is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub code: OutcomeCode,
    /// A short human message.
    pub error: String,
}

impl Verdict {
    /// A permanent failure with this code.
    pub fn permanent(code: OutcomeCode, error: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Permanent { code },
            code,
            error: clip(error.into()),
        }
    }

    /// A transient failure with this code (retried with backoff).
    pub fn transient(code: OutcomeCode, error: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Transient {
                code,
                retry_after: None,
            },
            code,
            error: clip(error.into()),
        }
    }
}

/// Cuts a message to [`MAX_MESSAGE_CHARS`] characters.
pub fn clip(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_MESSAGE_CHARS) {
        s.truncate(at);
        s.push('…');
    }
    s
}

/// What ActiveCampaign said, for messages: its error text, or a note that the body was not JSON.
fn said(resp: &AcResponse) -> String {
    match (&resp.json, resp.error_message()) {
        (_, Some(m)) => m,
        (None, None) => "non-JSON body (edge error page?)".into(),
        (Some(_), None) => "no error message".into(),
    }
}

/// Classifies an HTTP answer: `None` for 2xx (carry on), else why the attempt stops.
pub fn classify_answer(resp: &AcResponse) -> Option<Verdict> {
    let status = resp.status;
    let retry_after = resp.retry_after;
    let (outcome, code, error) = match status {
        200..=299 => return None,
        429 => (
            Outcome::Throttled { retry_after },
            OutcomeCode::RateLimited,
            "ActiveCampaign rate limit reached (429)".to_owned(),
        ),
        503 if retry_after.is_some() => (
            Outcome::Throttled { retry_after },
            OutcomeCode::RateLimited,
            "ActiveCampaign throttled the call (503 with Retry-After)".to_owned(),
        ),
        401 | 403 => (
            Outcome::AuthFailed,
            OutcomeCode::AuthFailed,
            format!("ActiveCampaign rejected the API key ({status})"),
        ),
        500..=599 => (
            Outcome::Transient {
                code: OutcomeCode::RejectedServerError,
                retry_after,
            },
            OutcomeCode::RejectedServerError,
            format!("ActiveCampaign answered {status}: {}", said(resp)),
        ),
        _ => (
            Outcome::Permanent {
                code: OutcomeCode::RejectedClientError,
            },
            OutcomeCode::RejectedClientError,
            format!("ActiveCampaign answered {status}: {}", said(resp)),
        ),
    };
    Some(Verdict {
        outcome,
        code,
        error: clip(error),
    })
}

/// Classifies a call that got no HTTP answer.
pub fn classify_failure(failure: &CallFailure) -> Verdict {
    match failure {
        CallFailure::Timeout => Verdict::transient(
            OutcomeCode::Timeout,
            "ActiveCampaign did not answer in time",
        ),
        CallFailure::Network(m) => {
            Verdict::transient(OutcomeCode::NetworkError, format!("network error: {m}"))
        }
        CallFailure::NotAllowed => Verdict::permanent(
            OutcomeCode::NetworkError,
            "the connection's api_url reaches an address that is not allowed (private network)",
        ),
    }
}

/// Classifies a call's result: `None` to carry on (2xx), else why the attempt stops.
pub fn classify(result: &Result<AcResponse, CallFailure>) -> Option<Verdict> {
    match result {
        Ok(resp) => classify_answer(resp),
        Err(f) => Some(classify_failure(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn answer(status: u16, json: Option<Value>, retry_after: Option<u64>) -> Option<Verdict> {
        classify(&Ok(AcResponse {
            status,
            json,
            retry_after,
        }))
    }

    #[test]
    fn every_2xx_carries_on() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(answer(s, Some(json!({})), None), None, "{s}");
        }
    }

    #[test]
    fn a_429_is_throttled_with_its_retry_after() {
        let v = answer(429, Some(json!({"message": "Too Many Requests"})), Some(30)).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after: Some(30)
            }
        );
        assert_eq!(v.code, OutcomeCode::RateLimited);
        let v = answer(429, None, None).unwrap();
        assert_eq!(v.outcome, Outcome::Throttled { retry_after: None });
    }

    #[test]
    fn a_503_is_throttled_only_with_retry_after() {
        let v = answer(503, Some(json!({"message": "x"})), Some(7)).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Throttled {
                retry_after: Some(7)
            }
        );
        let v = answer(503, Some(json!({"message": "Service Unavailable"})), None).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Transient {
                code: OutcomeCode::RejectedServerError,
                retry_after: None
            }
        );
        assert!(v.error.contains("503"), "{}", v.error);
        assert!(v.error.contains("Service Unavailable"), "{}", v.error);
    }

    #[test]
    fn other_5xx_including_html_pages_are_transient_server_errors() {
        for s in [500, 502, 504, 520, 521, 522, 523, 524, 599] {
            let v = answer(s, None, None).unwrap();
            assert_eq!(v.code, OutcomeCode::RejectedServerError, "{s}");
            assert!(matches!(v.outcome, Outcome::Transient { .. }), "{s}");
            assert!(v.error.contains("non-JSON"), "{}", v.error);
        }
        // A Retry-After on a plain server error is kept for the backoff floor.
        let v = answer(500, Some(json!({})), Some(60)).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Transient {
                code: OutcomeCode::RejectedServerError,
                retry_after: Some(60)
            }
        );
    }

    #[test]
    fn auth_answers_park_the_connection() {
        for s in [401, 403] {
            let v = answer(s, Some(json!({"message": "Forbidden"})), None).unwrap();
            assert_eq!(v.outcome, Outcome::AuthFailed);
            assert_eq!(v.code, OutcomeCode::AuthFailed);
        }
    }

    #[test]
    fn other_4xx_fail_permanently_with_the_message_read_defensively() {
        let body = json!({"errors": [{"title": "Contact Email Address is not valid.", "detail": "",
            "code": "email_invalid"}]});
        let v = answer(422, Some(body), None).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Permanent {
                code: OutcomeCode::RejectedClientError
            }
        );
        assert_eq!(
            v.error,
            "ActiveCampaign answered 422: Contact Email Address is not valid."
        );
        let v = answer(
            404,
            Some(json!({"errors": [{"status": 404, "title": "Not Found",
            "detail": "Tag not found"}]})),
            None,
        )
        .unwrap();
        assert_eq!(
            v.error,
            "ActiveCampaign answered 404: Not Found: Tag not found"
        );
        for (s, j) in [
            (400, Some(json!({}))),
            (402, None),
            (409, Some(json!([1, 2]))),
            (302, None),
        ] {
            let v = answer(s, j, None).unwrap();
            assert_eq!(v.code, OutcomeCode::RejectedClientError, "{s}");
        }
    }

    #[test]
    fn long_messages_are_clipped() {
        let v = answer(422, Some(json!({"message": "x".repeat(5000)})), None).unwrap();
        assert!(v.error.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn calls_without_an_answer_are_classified() {
        let v = classify(&Err(CallFailure::Timeout)).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Transient {
                code: OutcomeCode::Timeout,
                retry_after: None
            }
        );
        let v = classify(&Err(CallFailure::Network("connection reset".into()))).unwrap();
        assert_eq!(v.code, OutcomeCode::NetworkError);
        assert!(matches!(v.outcome, Outcome::Transient { .. }));
        let v = classify(&Err(CallFailure::NotAllowed)).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Permanent {
                code: OutcomeCode::NetworkError
            }
        );
    }
}
