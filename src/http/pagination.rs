//! Cursor pagination: `?limit=1..200` (default 50) `&cursor=<opaque>` → `{count, limit, next_cursor, records}`.
//! Cursors are keyset positions (the last id shown; ids are time-ordered), so pages stay correct while
//! rows arrive: no duplicates, no gaps.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::http::extract::QueryMap;
use crate::storage::PageRequest;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A page of records as every list endpoint returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub count: usize,
    pub limit: i64,
    pub next_cursor: Option<String>,
    pub records: Vec<T>,
}

/// The page the client asked for.
#[derive(Clone, Copy, Debug)]
pub struct PageParams {
    pub limit: i64,
    pub before: Option<Uuid>,
}

impl PageParams {
    pub fn from_query(q: &QueryMap) -> Result<Self, ApiError> {
        let limit = match q.0.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::validation(vec![FieldError::new(
                        "limit",
                        "must be an integer from 1 to 200",
                    )]));
                }
            },
        };
        let before = match q.0.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("cursor", "is not a valid cursor")])
            })?),
        };
        Ok(Self { limit, before })
    }

    /// What storage is asked for: one row more than shown, to know whether a next page exists.
    pub fn request(&self) -> PageRequest {
        PageRequest {
            limit: self.limit + 1,
            before: self.before,
        }
    }

    /// Builds the page from the rows storage returned for `request()`.
    pub fn page<T, R>(
        &self,
        mut rows: Vec<T>,
        id: impl Fn(&T) -> Uuid,
        map: impl FnMut(T) -> R,
    ) -> Page<R> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id(r)))
        } else {
            None
        };
        let records: Vec<R> = rows.into_iter().map(map).collect();
        Page {
            count: records.len(),
            limit: self.limit,
            next_cursor,
            records,
        }
    }
}

/// The cursor that continues after `id` (what `next_cursor` says on the page that ends with it).
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}", id.simple()))
}

fn decode_cursor(raw: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    Uuid::try_parse(text.strip_prefix("v1:")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        assert_eq!(decode_cursor("garbage"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("v2:abc")), None);
    }
}
