//! `ApiError`: the one error shape of API.md, produced at the HTTP edge.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::domain::FieldError;

/// An error answered to a client: status, stable machine code, human message, field problems.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub data: Vec<FieldError>,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

/// The wire shape: `{"message", "error": {"name", "code", "message", "data"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The status phrase, e.g. `Bad Request`.
    pub message: String,
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The status in PascalCase, e.g. `BadRequest`.
    pub name: String,
    /// Stable snake_case machine code.
    pub code: String,
    pub message: String,
    pub data: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: Vec::new(),
            retry_after: None,
        }
    }

    /// A 400 for failed validation. The code names the field when only one field failed.
    pub fn validation(data: Vec<FieldError>) -> Self {
        let code = validation_code(&data);
        let message = data
            .first()
            .map(|e| format!("{} {}", e.param, e.msg))
            .unwrap_or_else(|| "the request is not valid".into());
        Self {
            data,
            ..Self::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "rate limit exceeded; retry after the number of seconds in Retry-After",
            )
        }
    }

    /// A 500 that says nothing internal; the cause is logged here, once.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        let phrase = self.status.canonical_reason().unwrap_or("Error");
        ErrorBody {
            message: phrase.to_owned(),
            error: ErrorDetail {
                name: pascal_case(phrase),
                code: self.code.to_owned(),
                message: self.message.clone(),
                data: self.data.clone(),
            },
        }
    }
}

fn validation_code(data: &[FieldError]) -> &'static str {
    let mut fields = data.iter().map(|e| {
        e.param
            .rsplit(['.', ']'])
            .next()
            .unwrap_or(&e.param)
            .to_owned()
    });
    let first = fields.next();
    if fields.any(|f| Some(&f) != first.as_ref()) {
        return "validation_failed";
    }
    match first.as_deref() {
        Some("event") => "invalid_event",
        Some("payload") | Some("email") => "invalid_payload",
        Some("resource") => "invalid_resource",
        Some("resource_id") => "invalid_resource_id",
        Some("workspace") => "invalid_workspace",
        Some("name") => "invalid_name",
        Some("description") => "invalid_description",
        Some("limit") => "invalid_limit",
        Some("cursor") => "invalid_cursor",
        _ => "validation_failed",
    }
}

fn pascal_case(phrase: &str) -> String {
    phrase
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            let first = cs.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(cs).collect::<String>()
        })
        .collect()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Conflict(what) => {
                Self::conflict("conflict", format!("{what} already exists"))
            }
            crate::storage::StorageError::NotFound(what) => Self::not_found(what),
            other => Self::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_status_in_pascal_case() {
        let e = ApiError::validation(vec![FieldError::new(
            "payload",
            "must contain at least one value",
        )]);
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"message": "Bad Request", "error": {"name": "BadRequest",
              "code": "invalid_payload", "message": "payload must contain at least one value",
              "data": [{"param": "payload", "msg": "must contain at least one value"}]}})
        );
        let e = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "x");
        assert_eq!(e.body().error.name, "PayloadTooLarge");
        let e = ApiError::too_many_requests(0);
        assert_eq!(e.body().error.name, "TooManyRequests");
        assert_eq!(e.retry_after, Some(1));
    }

    #[test]
    fn several_fields_make_a_generic_validation_code() {
        let e = ApiError::validation(vec![
            FieldError::new("event", "is required"),
            FieldError::new("payload", "is required"),
        ]);
        assert_eq!(e.code, "validation_failed");
        let e = ApiError::validation(vec![FieldError::new("[2].resource_id", "bad")]);
        assert_eq!(e.code, "invalid_resource_id");
    }
}
