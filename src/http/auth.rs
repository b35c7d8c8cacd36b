//! Tenant extractors: the caller's organization (and, for publishable keys, workspace) is resolved
//! here, before any handler code runs. Handlers never see a raw credential.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::{self, MachinePrincipal};
use crate::domain::{OrganizationId, PublishableKey};
use crate::error::ApiError;
use crate::http::AppState;

/// The header that carries a publishable key.
pub const PUBLISHABLE_KEY_HEADER: &str = "x-meshes-publishable-key";

/// A caller authenticated with an organization machine key (JWT or Basic). Management routes take this.
#[derive(Clone, Debug)]
pub struct Machine(pub MachinePrincipal);

impl Machine {
    pub fn org(&self) -> OrganizationId {
        self.0.organization_id
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn machine_from(parts: &Parts, state: &AppState) -> Result<MachinePrincipal, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    auth::authenticate_machine(&*state.store, &state.master_key, value, unix_now())
        .await
        .map_err(|e| match e {
            auth::AuthError::Storage(s) => ApiError::from(s),
            other => {
                tracing::debug!(reason = %other, "machine credentials refused");
                ApiError::unauthorized()
            }
        })
}

impl FromRequestParts<AppState> for Machine {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        machine_from(parts, state).await.map(Machine)
    }
}

/// Who is sending events: a workspace's publishable key, or an organization machine key.
#[derive(Clone, Debug)]
pub enum IngestCaller {
    Publishable(PublishableKey),
    Machine(MachinePrincipal),
}

impl IngestCaller {
    pub fn org(&self) -> OrganizationId {
        match self {
            Self::Publishable(k) => k.organization_id,
            Self::Machine(m) => m.organization_id,
        }
    }

    /// What the per-key rate limit counts against.
    pub fn rate_key(&self) -> String {
        match self {
            Self::Publishable(k) => k.id.to_string(),
            Self::Machine(m) => m.access_key.clone(),
        }
    }

    /// `created_by` on the events this caller sends.
    pub fn created_by(&self) -> &'static str {
        match self {
            Self::Publishable(_) => "publishable_key",
            Self::Machine(_) => "machine_key",
        }
    }
}

impl FromRequestParts<AppState> for IngestCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A machine key, when sent, wins: it is the stronger credential.
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return machine_from(parts, state).await.map(IngestCaller::Machine);
        }
        let key = parts
            .headers
            .get(PUBLISHABLE_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        auth::authenticate_publishable(&*state.store, key.trim())
            .await
            .map(IngestCaller::Publishable)
            .map_err(|e| match e {
                auth::AuthError::Storage(s) => ApiError::from(s),
                other => {
                    tracing::debug!(reason = %other, "publishable key refused");
                    ApiError::unauthorized()
                }
            })
    }
}
