//! The error bodies ActiveCampaign answers with: families A–H of activecampaign-api.md §2.
//! (Family G, the Cloudflare HTML page, only comes from injected faults: see `faults`.)

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One entry of a family A (validation) error.
#[derive(Debug, Clone)]
pub struct FieldError {
    title: &'static str,
    code: &'static str,
    error: Option<&'static str>,
    pointer: &'static str,
}

impl FieldError {
    /// `email_invalid` on `/data/attributes/email`.
    pub fn invalid_email() -> Self {
        Self {
            title: "Contact Email Address is not valid.",
            code: "email_invalid",
            error: Some("must_be_valid_email_address"),
            pointer: "/data/attributes/email",
        }
    }

    /// `field_missing` on `/data/attributes/email` (wording is the sandbox's own).
    pub fn missing_email() -> Self {
        Self {
            title: "Contact Email Address is required.",
            code: "field_missing",
            error: None,
            pointer: "/data/attributes/email",
        }
    }

    /// `duplicate` on `/data/attributes/email`.
    pub fn duplicate_email() -> Self {
        Self {
            title: "Email address already exists in the system",
            code: "duplicate",
            error: None,
            pointer: "/data/attributes/email",
        }
    }

    /// `field_invalid` on a custom field value (wording is the sandbox's own).
    pub fn invalid_field_value() -> Self {
        Self {
            title: "Field value is not valid.",
            code: "field_invalid",
            error: None,
            pointer: "/data/attributes/fieldValues",
        }
    }

    /// `field_invalid` on a contactList status other than 0–3 (wording is the sandbox's own).
    pub fn invalid_list_status() -> Self {
        Self {
            title: "The status is not valid.",
            code: "field_invalid",
            error: None,
            pointer: "/data/attributes/status",
        }
    }

    /// `related_missing` / `list_not_exist`.
    pub fn list_not_exist() -> Self {
        Self {
            title: "The related list does not exist.",
            code: "related_missing",
            error: Some("list_not_exist"),
            pointer: "/data/attributes/list",
        }
    }

    /// `related_missing` / `contact_not_exist`.
    pub fn contact_not_exist() -> Self {
        Self {
            title: "The related contact does not exist.",
            code: "related_missing",
            error: Some("contact_not_exist"),
            pointer: "/data/attributes/contact",
        }
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "title": self.title,
            "detail": "",
            "code": self.code,
            "source": { "pointer": self.pointer },
        });
        if let Some(error) = self.error {
            entry["error"] = json!(error);
        }
        entry
    }
}

/// An ActiveCampaign error answer.
#[derive(Debug, Clone)]
pub enum AcError {
    /// Family A: 422 `{"errors":[{title, detail, code, error?, source:{pointer}}]}`.
    Validation(Vec<FieldError>),
    /// Family B: 422 `{"errors":[{"status":422,"title":"Missing attribute","source":{"pointer":"/data/attributes/<attr>"}}]}`.
    MissingAttribute(Vec<&'static str>),
    /// Family C: 404 `{"message":"No Result found for <model> with id <id>"}`.
    NotFound {
        /// `Subscriber`, `SubscriberTag`, `Tag`, `_List`, `SubscriberList`.
        model: &'static str,
        /// The id as the client wrote it.
        id: String,
    },
    /// Family D: 404 `{"errors":[{"status":404,"title":"Not Found","detail":"<detail>"}]}`.
    RelatedNotFound(&'static str),
    /// Family E: 403 `{"errors":[{"status":403,"title":"Forbidden","detail":"<detail>"}]}`.
    Permission(&'static str),
    /// Family F: 422 `{"message":"Could not process request","error":"<db error>"}`.
    Database(String),
    /// Family H: 400 `{}`.
    BadRequest,
    /// Authentication failure: 403 `{"message":"Forbidden"}`.
    Forbidden,
    /// No such endpoint: 404 `{"message":"Not Found"}`.
    NoRoute,
}

impl AcError {
    /// Family C.
    pub fn not_found(model: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            model,
            id: id.into(),
        }
    }
}

impl IntoResponse for AcError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "errors": errors.iter().map(FieldError::to_json).collect::<Vec<_>>() }),
            ),
            Self::MissingAttribute(attrs) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "errors": attrs.iter().map(|a| json!({
                    "status": 422,
                    "title": "Missing attribute",
                    "source": { "pointer": format!("/data/attributes/{a}") },
                })).collect::<Vec<_>>() }),
            ),
            Self::NotFound { model, id } => (
                StatusCode::NOT_FOUND,
                json!({ "message": format!("No Result found for {model} with id {id}") }),
            ),
            Self::RelatedNotFound(detail) => (
                StatusCode::NOT_FOUND,
                json!({ "errors": [{ "status": 404, "title": "Not Found", "detail": detail }] }),
            ),
            Self::Permission(detail) => (
                StatusCode::FORBIDDEN,
                json!({ "errors": [{ "status": 403, "title": "Forbidden", "detail": detail }] }),
            ),
            Self::Database(error) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Could not process request", "error": error }),
            ),
            Self::BadRequest => (StatusCode::BAD_REQUEST, json!({})),
            Self::Forbidden => (StatusCode::FORBIDDEN, json!({ "message": "Forbidden" })),
            Self::NoRoute => (StatusCode::NOT_FOUND, json!({ "message": "Not Found" })),
        };
        (status, Json(body)).into_response()
    }
}
