//! Our own JSON body and query extractors, so every malformed request gets our error shape
//! (not axum's plain-text rejections) with the right status: 413, 415 or 400.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::error::ApiError;

/// Largest body of `/events` and of any management request.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest body of `/events/bulk`.
pub const MAX_BULK_BODY: usize = 5 * 1024 * 1024;

/// A JSON body of at most `MAX` bytes, parsed into a `Value`, with its size in bytes.
pub struct JsonBody<const MAX: usize>(pub Value, pub usize);

/// A body that may be empty (retry, cancel, DELETE): `None` when empty, else JSON as `JsonBody`.
pub struct OptionalJsonBody(pub Option<Value>);

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than {} KiB", max / 1024),
    )
}

fn is_json_content_type(parts_ct: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = parts_ct.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads at most `max` bytes. A body over the limit is still drained (up to twice the limit) before
/// the 413 goes out: a client that is still writing would otherwise see a broken pipe, not our answer.
async fn read_body(req: Request, max: usize) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let drain_cap = max.saturating_mul(2);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_cap as u64) {
        return Err(too_large(max));
    }
    let mut body = req.into_body();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(max));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > drain_cap {
                break;
            }
            if seen <= max {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > max {
        return Err(too_large(max));
    }
    Ok(buf.into())
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = if e.to_string().contains("recursion limit") {
            "the JSON body is nested too deeply".to_owned()
        } else {
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        };
        ApiError::bad_request("malformed_json", message)
    })
}

impl<S: Send + Sync, const MAX: usize> FromRequest<S> for JsonBody<MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = read_body(req, MAX).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "malformed_json",
                "the request body is empty",
            ));
        }
        let len = bytes.len();
        Ok(Self(parse_json(&bytes)?, len))
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let has_ct = req.headers().contains_key(header::CONTENT_TYPE);
        let json_ct = is_json_content_type(req.headers().get(header::CONTENT_TYPE));
        let bytes = read_body(req, MAX_BODY).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if has_ct && !json_ct {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        Ok(Self(Some(parse_json(&bytes)?)))
    }
}

/// The query string as a map (last value wins). Never rejects: unknown parameters are ignored
/// and each handler validates the ones it reads.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let map: HashMap<String, String> = url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // No filter takes U+0000, and PostgreSQL cannot compare text with it: a 400, not a 500.
        if let Some((k, _)) = map
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::validation(vec![crate::error::FieldError::new(
                k.replace('\0', ""),
                "must not contain the NUL character (U+0000)",
            )]));
        }
        Ok(Self(map))
    }
}

/// A path id: a malformed one is simply not found (404), like an unknown one.
pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// Reads an optional string field of a JSON object for validation.
pub fn string_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, crate::error::FieldError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(crate::error::FieldError::new(name, "must be a string")),
    }
}

/// The body as a JSON object, or a 400 naming `body`.
pub fn json_object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::validation(vec![crate::error::FieldError::new(
            "body",
            "must be a JSON object",
        )])
    })
}
