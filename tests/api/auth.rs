//! Machine keys (every JWT check, Basic) and tenant isolation.

use handoff::auth::jwt::TokenSpec;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::app_tests;
use crate::support::{TestApp, error_body};

async fn with_token(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/workspaces"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

app_tests! {
    async fn a_fresh_jwt_and_basic_credentials_are_accepted(app: TestApp) {
        assert_eq!(app.get("/api/v1/workspaces").await.status(), 200);
        let basic = app.client.get(app.url("/api/v1/workspaces"))
            .header("Authorization", TestApp::basic_for(&app.creds)).send().await.unwrap();
        assert_eq!(basic.status(), 200);
    }

    async fn each_jwt_rejection_is_a_401(app: TestApp) {
        let now = chrono::Utc::now().timestamp();
        let org = app.creds.organization_id.to_string();
        let secret = app.creds.secret_key.expose_secret().as_bytes().to_vec();
        let key = app.creds.access_key.clone();
        let good = TokenSpec::new(&key, &org, now);
        let wrong_org = uuid::Uuid::new_v4().to_string();
        let cases: Vec<(&str, String)> = vec![
            ("expired", TokenSpec { iat: now - 90, exp: now - 31, ..good.clone() }.sign(&secret)),
            ("lifetime over 60 s", TokenSpec { exp: now + 61, ..good.clone() }.sign(&secret)),
            ("iat in the future", TokenSpec { iat: now + 40, exp: now + 60, ..good.clone() }.sign(&secret)),
            ("wrong aud", TokenSpec { audience: "someone-else", ..good.clone() }.sign(&secret)),
            ("wrong iss", TokenSpec { issuer: Some("urn:meshes:m2m:mk_other"), ..good.clone() }.sign(&secret)),
            ("wrong org", TokenSpec { organization: &wrong_org, ..good.clone() }.sign(&secret)),
            ("bad signature", good.sign(b"not-the-secret-not-the-secret-not-the-secret")),
            ("unknown kid", TokenSpec { access_key: "mk_unknownunknownunknown00", issuer: Some("urn:meshes:m2m:mk_unknownunknownunknown00"), ..good.clone() }.sign(&secret)),
            ("garbage", "a.b.c".to_owned()),
        ];
        for (why, token) in cases {
            let resp = with_token(&app, &token).await;
            assert_eq!(resp.status(), 401, "{why}");
            error_body(resp, 401).await;
        }
    }

    async fn wrong_basic_credentials_and_other_schemes_are_401(app: TestApp) {
        use base64::Engine;
        let wrong = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", app.creds.access_key, "x".repeat(43)));
        for header in [format!("Basic {wrong}"), "Basic !!!".into(), "Digest abc".into(), "Bearer".into()] {
            let resp = app.client.get(app.url("/api/v1/workspaces")).header("Authorization", header.clone()).send().await.unwrap();
            assert_eq!(resp.status(), 401, "{header}");
        }
        error_body(app.client.get(app.url("/api/v1/workspaces")).send().await.unwrap(), 401).await;
    }

    async fn a_publishable_key_cannot_use_management_routes(app: TestApp) {
        let resp = app.client.get(app.url("/api/v1/workspaces"))
            .header("X-Meshes-Publishable-Key", &app.creds.publishable_key).send().await.unwrap();
        error_body(resp, 401).await;
        let resp = app.client.post(app.url("/api/v1/workspaces"))
            .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
            .json(&json!({"name": "Sneaky"})).send().await.unwrap();
        error_body(resp, 401).await;
    }

    async fn another_organization_gets_404_for_our_workspace(app: TestApp) {
        let other = app.other_org().await;
        let ours = format!("/api/v1/workspaces/{}", app.creds.workspace_id);
        let as_other = |method: reqwest::Method, path: String| {
            app.client.request(method, app.url(&path))
                .header("Authorization", format!("Bearer {}", TestApp::jwt_for(&other)))
        };
        error_body(as_other(reqwest::Method::GET, ours.clone()).send().await.unwrap(), 404).await;
        error_body(as_other(reqwest::Method::PUT, ours.clone()).json(&json!({"name": "Taken over"})).send().await.unwrap(), 404).await;
        error_body(as_other(reqwest::Method::POST, format!("{ours}/publishable-key/rotate")).send().await.unwrap(), 404).await;
        let list: serde_json::Value = as_other(reqwest::Method::GET, "/api/v1/workspaces".into()).send().await.unwrap().json().await.unwrap();
        let ids: Vec<_> = list["records"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, vec![other.workspace_id.to_string()]);
        // Ours still has its name.
        let w: serde_json::Value = app.get(&ours).await.json().await.unwrap();
        assert_eq!(w["name"], "Onboarding");
    }
}
