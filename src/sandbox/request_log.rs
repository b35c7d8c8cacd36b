//! The per-account request log: what reached an account and what it answered, newest last,
//! bounded so a long benchmark cannot grow it without limit.

use std::collections::VecDeque;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many requests an account remembers.
pub const LOG_CAPACITY: usize = 10_000;
/// How much of a request body is kept.
pub const BODY_CAPACITY: usize = 4096;

/// One request as the log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// When the account decided the request: for requests that reached the rate limiter, the
    /// instant it counted (or refused) them, so the log can be checked against the limit.
    pub at: DateTime<Utc>,
    pub method: String,
    /// Path below the account (`/api/3/contact/sync?x=1`), with the query.
    pub path: String,
    /// The answered status; `None` when the connection was dropped without an answer.
    pub status: Option<u16>,
    /// The request body: JSON when it parsed, otherwise (or when cut at 4 KiB) its text.
    pub body: Option<Value>,
}

/// A log entry as stored: the body stays raw bytes until someone reads the log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub body: Bytes,
}

impl Entry {
    fn to_logged(&self) -> LoggedRequest {
        let body = (!self.body.is_empty()).then(|| {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
        });
        LoggedRequest {
            at: self.at,
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status,
            body,
        }
    }
}

/// The bounded log of one account.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<Entry>,
}

impl RequestLog {
    /// Records a request, forgetting the oldest past [`LOG_CAPACITY`]. The body is copied (at
    /// most [`BODY_CAPACITY`] bytes) so the log never pins a large request buffer.
    pub fn push(&mut self, mut entry: Entry) {
        if entry.body.len() > BODY_CAPACITY {
            entry.body = Bytes::copy_from_slice(&entry.body[..BODY_CAPACITY]);
        } else if !entry.body.is_empty() {
            entry.body = Bytes::copy_from_slice(&entry.body);
        }
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Every remembered request, ordered by `at` (requests finish out of order; the limiter's
    /// instants are what a reader compares).
    pub fn entries(&self) -> Vec<LoggedRequest> {
        let mut out: Vec<LoggedRequest> = self.entries.iter().map(Entry::to_logged).collect();
        out.sort_by_key(|e| e.at);
        out
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64, body: &[u8]) -> Entry {
        Entry {
            at: DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap(),
            method: "POST".into(),
            path: "/api/3/contact/sync".into(),
            status: Some(200),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn bodies_read_back_as_json_or_text_and_are_cut_at_4_kib() {
        let mut log = RequestLog::default();
        log.push(entry(0, br#"{"a":1}"#));
        log.push(entry(1, b"not json"));
        log.push(entry(2, &vec![b'x'; 10_000]));
        log.push(entry(3, b""));
        let e = log.entries();
        assert_eq!(e[0].body, Some(serde_json::json!({"a":1})));
        assert_eq!(e[1].body, Some(Value::String("not json".into())));
        assert_eq!(
            e[2].body.as_ref().unwrap().as_str().unwrap().len(),
            BODY_CAPACITY
        );
        assert_eq!(e[3].body, None);
    }

    #[test]
    fn the_log_keeps_the_newest_entries_in_time_order() {
        let mut log = RequestLog::default();
        for n in (0..LOG_CAPACITY as i64 + 5).rev() {
            log.push(entry(n, b""));
        }
        let e = log.entries();
        assert_eq!(e.len(), LOG_CAPACITY);
        assert!(e.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
