//! Hostile and malformed requests: each gets a 4xx in the error shape, and the server keeps serving.

use serde_json::json;

use crate::app_tests;
use crate::support::{TestApp, error_body, onboarding_event};

async fn raw(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

app_tests! {
    async fn hostile_bodies_get_4xx_in_the_error_shape(app: TestApp) {
        let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
            ("malformed JSON", "application/json", b"{\"event\": ".to_vec(), 400),
            ("empty body", "application/json", Vec::new(), 400),
            ("wrong content type", "text/plain", serde_json::to_vec(&onboarding_event()).unwrap(), 415),
            ("form content type", "application/x-www-form-urlencoded", b"event=x".to_vec(), 415),
            ("over 1 MiB", "application/json", format!("{{\"event\":\"x\",\"payload\":{{\"a\":\"{}\"}}}}", "y".repeat(1024 * 1024)).into_bytes(), 413),
            ("10,000 levels deep", "application/json", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400),
            ("10,000 levels deep in payload", "application/json", format!("{{\"event\":\"x\",\"payload\":{{\"a\":{}1{}}}}}", "{\"b\":".repeat(10_000), "}".repeat(10_000)).into_bytes(), 400),
            ("not UTF-8", "application/json", b"{\"event\": \"\xff\xfe\", \"payload\": {\"a\": 1}}".to_vec(), 400),
            ("10,000-character event name", "application/json", serde_json::to_vec(&json!({"event": "e".repeat(10_000), "payload": {"a": 1}})).unwrap(), 400),
            ("a NUL character", "application/json", br#"{"event":"x","payload":{"a":"\u0000"}}"#.to_vec(), 400),
            ("payload nested 40 levels", "application/json", format!("{{\"event\":\"x\",\"payload\":{}1{}}}", "{\"b\":".repeat(40), "}".repeat(40)).into_bytes(), 400),
        ];
        for (what, ct, body, status) in cases {
            let resp = raw(&app, "/api/v1/events", ct, body).await;
            assert_eq!(resp.status().as_u16(), status, "{what}");
            error_body(resp, status).await;
        }
        let resp = raw(&app, "/api/v1/events/bulk", "application/json", serde_json::to_vec(&vec![onboarding_event(); 101]).unwrap()).await;
        error_body(resp, 400).await;
        let big = format!("[{{\"event\":\"x\",\"payload\":{{\"a\":\"{}\"}}}}]", "y".repeat(5 * 1024 * 1024));
        error_body(raw(&app, "/api/v1/events/bulk", "application/json", big.into_bytes()).await, 413).await;
        // A 300 KiB item fits the bulk body but not the per-event limit: an item error.
        let item = json!({"event": "x", "payload": {"a": "y".repeat(300 * 1024)}});
        let resp = raw(&app, "/api/v1/events/bulk", "application/json", serde_json::to_vec(&json!([item, onboarding_event()])).unwrap()).await;
        assert_eq!(resp.status(), 207);

        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(app.send_event(&onboarding_event()).await.status(), 201);
    }

    async fn unknown_routes_and_methods_answer_in_the_error_shape(app: TestApp) {
        let body = error_body(app.client.get(app.url("/api/v1/nope")).send().await.unwrap(), 404).await;
        assert_eq!(body["error"]["name"], "NotFound");
        error_body(app.client.delete(app.url("/api/v1/events")).send().await.unwrap(), 405).await;
    }

    async fn health_and_readiness_answer(app: TestApp) {
        assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        let ready: serde_json::Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready");
    }
}
