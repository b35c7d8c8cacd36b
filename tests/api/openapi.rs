//! The OpenAPI document covers every routed endpoint.

use serde_json::Value;

use crate::app_tests;

app_tests! {
    async fn every_routed_endpoint_is_in_the_openapi_document(app: TestApp) {
        let doc: Value = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let routes = handoff::http::routed_endpoints();
        assert!(routes.len() >= 10);
        for (method, path) in routes {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} is routed but missing from openapi.json");
            assert!(op["responses"].is_object(), "{method} {path} has no responses");
        }
    }
}
