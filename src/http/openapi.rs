//! The OpenAPI document, generated from the handlers' annotations and served at `/api/v1/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{connections, events, ingest, ops, replay, rule_test, rules, workspaces};

#[derive(OpenApi)]
#[openapi(
    info(title = "Handoff API", description = "Meshes v1 compatible event routing. Items marked (+) go beyond Meshes."),
    paths(
        ingest::create_event, ingest::create_events_bulk,
        workspaces::list_workspaces, workspaces::create_workspace, workspaces::get_workspace,
        workspaces::update_workspace, workspaces::rotate_publishable_key,
        connections::list_connections, connections::list_workspace_connections, connections::create_connection,
        connections::get_connection, connections::update_connection, connections::delete_connection,
        connections::connection_actions, connections::list_integrations,
        rules::list_rules, rules::list_workspace_rules, rules::create_rule, rules::get_rule,
        rules::update_rule, rules::delete_rule, rule_test::send_test_event,
        events::list_events, events::list_workspace_events, events::get_event, events::get_event_payload,
        events::cancel_event, events::list_attempts, events::get_attempt, events::retry_rule_event,
        events::cancel_rule_event, replay::replay,
        ops::healthz, ops::readyz, ops::metrics, openapi_json,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::FieldError)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "publishable_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Meshes-Publishable-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
