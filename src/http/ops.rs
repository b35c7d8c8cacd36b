//! Operations endpoints (no auth): liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http::AppState;
use crate::metrics::Metrics;
use crate::storage::Store;

/// What the operations endpoints read: the database and this instance's metrics. The API's state
/// provides it; a worker-only node builds it alone for its operations listener.
#[derive(Clone)]
pub struct OpsState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for OpsState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            metrics: state.metrics.clone(),
        }
    }
}

/// The operations endpoints alone, for a node that serves no API (`handoff worker` with
/// `delivery.ops_bind`): health, readiness and its delivery metrics.
pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(crate::http::not_found)
        .with_state(state)
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers and its migrations are applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Not ready", body = Object)))]
pub async fn readyz(State(state): State<OpsState>) -> (StatusCode, Json<Value>) {
    match state.store.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.store.backend()})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready"})),
            )
        }
    }
}

/// Prometheus text exposition of this instance's metrics. The queue gauges are read now; when that
/// read fails the other metrics are still served (and the failure is logged once per outage).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let queue = match state.store.queue_stats(crate::domain::now()).await {
        Ok(q) => {
            // Ends an outage, so the next failure is logged again.
            state.metrics.queue_stats_failed(false);
            Some(q)
        }
        Err(e) => {
            if state.metrics.queue_stats_failed(true) {
                tracing::warn!(error = %e, "reading queue stats for /metrics failed; serving the rest");
            }
            None
        }
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(queue),
    )
}
