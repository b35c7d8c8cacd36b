//! The HTTP edge: router, shared state, extractors, and the handlers for ingest, management and ops.

pub mod auth;
pub mod connections;
pub mod events;
pub mod extract;
pub mod ingest;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod replay;
pub mod rule_test;
pub mod rules;
pub mod workspaces;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use chrono::{DateTime, Utc};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::auth::crypto::MasterKey;
use crate::config::DestinationsConfig;
use crate::domain::{NewRuleEvent, WorkspaceId};
use crate::error::ApiError;
use crate::ingest::ratelimit::KeyRateLimiter;
use crate::ingest::rule_cache::RuleCache;
use crate::ingest::{Batcher, ValidEvent};
use crate::storage::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub master_key: Arc<MasterKey>,
    pub batcher: Batcher,
    pub ingest_limiter: KeyRateLimiter,
    pub rule_cache: RuleCache,
    /// The one HTTP client for destination calls (SSRF-guarded unless private networks are allowed).
    pub destination_http: reqwest::Client,
    pub destinations: DestinationsConfig,
    /// Wakes this node's delivery workers when deliveries were committed.
    pub delivery_wake: Arc<tokio::sync::Notify>,
    /// This instance's metrics, shared with its delivery pool and served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// A 404 unless the workspace belongs to the organization.
    pub async fn require_workspace(
        &self,
        org: crate::domain::OrganizationId,
        workspace: WorkspaceId,
    ) -> Result<(), ApiError> {
        match self.store.get_workspace(org, workspace).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("workspace")),
        }
    }

    /// The rule events an accepted event fans out to (one per active matching rule), to be committed
    /// in the same transaction as the event.
    pub async fn plan_deliveries(
        &self,
        workspace: WorkspaceId,
        event: &ValidEvent,
    ) -> Result<Vec<NewRuleEvent>, ApiError> {
        let view = crate::rules::EventView {
            event: &event.event,
            resource: &event.resource,
            resource_id: event.resource_id.as_deref(),
            payload: &event.payload,
        };
        Ok(self.rule_cache.plan(workspace, &view).await?)
    }
}

/// RFC 3339 in UTC with milliseconds, as every response shows time.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Builds the router while recording every (method, path) it serves, so a test can hold the
/// OpenAPI document to the routes that really exist.
struct Routes {
    router: Router<AppState>,
    listed: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            listed: Vec::new(),
        }
    }

    fn add(mut self, method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.listed.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

fn filter(m: &Method) -> MethodFilter {
    MethodFilter::try_from(m.clone()).expect("standard method")
}

macro_rules! route {
    ($routes:expr, $method:ident $path:literal => $handler:path) => {
        $routes.add(
            Method::$method,
            $path,
            on(filter(&Method::$method), $handler),
        )
    };
}

fn ingest_routes() -> Routes {
    let r = Routes::new();
    let r = route!(r, POST "/api/v1/events" => ingest::create_event);
    // Same path as ingest, so the same router: two routers with their own fallbacks cannot share it.
    let r = route!(r, GET "/api/v1/events" => events::list_events);
    route!(r, POST "/api/v1/events/bulk" => ingest::create_events_bulk)
}

fn management_routes() -> Routes {
    let r = Routes::new();
    let r = route!(r, GET "/api/v1/workspaces" => workspaces::list_workspaces);
    let r = route!(r, POST "/api/v1/workspaces" => workspaces::create_workspace);
    let r = route!(r, GET "/api/v1/workspaces/{id}" => workspaces::get_workspace);
    let r = route!(r, PUT "/api/v1/workspaces/{id}" => workspaces::update_workspace);
    let r = route!(r, POST "/api/v1/workspaces/{id}/publishable-key/rotate" => workspaces::rotate_publishable_key);
    let r = route!(r, GET "/api/v1/workspaces/{id}/connections" => connections::list_workspace_connections);
    let r = route!(r, GET "/api/v1/workspaces/{id}/rules" => rules::list_workspace_rules);
    let r = route!(r, GET "/api/v1/connections" => connections::list_connections);
    let r = route!(r, POST "/api/v1/connections" => connections::create_connection);
    let r = route!(r, GET "/api/v1/connections/{id}" => connections::get_connection);
    let r = route!(r, PUT "/api/v1/connections/{id}" => connections::update_connection);
    let r = route!(r, DELETE "/api/v1/connections/{id}" => connections::delete_connection);
    let r = route!(r, GET "/api/v1/connections/{id}/actions" => connections::connection_actions);
    let r = route!(r, GET "/api/v1/integrations" => connections::list_integrations);
    let r = route!(r, GET "/api/v1/rules" => rules::list_rules);
    let r = route!(r, POST "/api/v1/rules" => rules::create_rule);
    let r = route!(r, GET "/api/v1/rules/{id}" => rules::get_rule);
    let r = route!(r, PUT "/api/v1/rules/{id}" => rules::update_rule);
    let r = route!(r, DELETE "/api/v1/rules/{id}" => rules::delete_rule);
    let r = route!(r, POST "/api/v1/rules/{id}/test" => rule_test::send_test_event);
    let r = route!(r, GET "/api/v1/workspaces/{id}/events" => events::list_workspace_events);
    let r = route!(r, GET "/api/v1/events/{id}" => events::get_event);
    let r = route!(r, GET "/api/v1/events/{id}/payload" => events::get_event_payload);
    let r = route!(r, POST "/api/v1/events/{id}/cancel" => events::cancel_event);
    let r = route!(r, GET "/api/v1/events/{id}/rules/{ruleId}/attempts" => events::list_attempts);
    let r = route!(r, GET "/api/v1/events/{id}/rules/{ruleId}/attempts/{attemptId}" => events::get_attempt);
    let r = route!(r, POST "/api/v1/events/{id}/rules/{ruleId}/retry" => events::retry_rule_event);
    let r =
        route!(r, POST "/api/v1/events/{id}/rules/{ruleId}/cancel" => events::cancel_rule_event);
    route!(r, POST "/api/v1/workspaces/{id}/replay" => replay::replay)
}

fn ops_routes() -> Routes {
    let r = Routes::new();
    let r = route!(r, GET "/healthz" => ops::healthz);
    let r = route!(r, GET "/readyz" => ops::readyz);
    let r = route!(r, GET "/metrics" => ops::metrics);
    route!(r, GET "/api/v1/openapi.json" => openapi::openapi_json)
}

/// Every (method, path) the router serves.
pub fn routed_endpoints() -> Vec<(Method, &'static str)> {
    [ingest_routes(), management_routes(), ops_routes()]
        .into_iter()
        .flat_map(|r| r.listed)
        .collect()
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    // Publishable keys live in browsers, so ingest answers CORS preflights from any origin.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-meshes-publishable-key"),
            HeaderName::from_static("idempotency-key"),
        ])
        .max_age(std::time::Duration::from_secs(86_400));
    // The 405 fallback goes in before the CORS layer, or it would replace the layered fallback
    // that answers preflights (OPTIONS) on POST-only routes.
    // Metrics see every ingest request that reached a route, refusals by the extractors included
    // (CORS preflights are answered outside, by the CORS layer).
    let ingest = ingest_routes()
        .router
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ingest::track,
        ))
        .layer(cors);
    let rest = management_routes()
        .router
        .merge(ops_routes().router)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .merge(ingest)
        .merge(rest)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(log_request))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal(&"a handler panicked").into_response()
        }))
        .with_state(state)
}

/// The answer to an unknown route, in the error shape (also the worker's operations listener's).
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// One line per request: method, route, status, duration. Never headers or bodies.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(http.method = %method, http.route = %route, http.status = status, duration_ms, "request failed");
    } else {
        tracing::debug!(http.method = %method, http.route = %route, http.status = status, duration_ms, "request");
    }
    response
}
