//! Connections: credentials checked against the (sandbox) account, never returned; the catalog; live actions.

use std::time::{Duration, Instant};

use handoff::sandbox::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, error_body, sandbox_account};

fn create_body(app: &TestApp, api_url: &str, key: &str) -> Value {
    json!({"workspace": app.creds.workspace_id.to_string(), "type": "activecampaign", "name": "Northstar AC",
           "metadata": {"api_url": api_url, "api_key": key}})
}

app_tests! {
    async fn a_connection_is_created_after_its_key_is_checked_and_never_shows_the_key(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let resp = app.post("/api/v1/connections", &create_body(&app, &account.api_url, &account.token)).await;
        assert_eq!(resp.status(), 201);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(&account.token), "the key leaked: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let c = &body["connection"];
        assert_eq!(c["type"], "activecampaign");
        assert_eq!(c["metadata"], json!({"api_url": account.api_url}));
        assert_eq!(c["active"], true);
        assert_eq!(c["inactive_reason"], Value::Null);
        assert_eq!(c["workspace"], app.creds.workspace_id.to_string());
        let id = c["id"].as_str().unwrap();
        let stored = app.store.get_connection(app.creds.organization_id, uuid::Uuid::parse_str(id).unwrap().into()).await.unwrap().unwrap();
        assert!(!stored.api_key_ciphertext.windows(account.token.len()).any(|w| w == account.token.as_bytes()));
        assert!(sandbox.request_log(&account.name).iter().any(|r| r.path.contains("/api/3/tags")), "the key was checked");

        for path in [format!("/api/v1/connections/{id}"), "/api/v1/connections".into(), format!("/api/v1/workspaces/{}/connections", app.creds.workspace_id)] {
            let text = app.get(&path).await.text().await.unwrap();
            assert!(text.contains(id), "{path}");
            assert!(!text.contains(&account.token), "{path} leaked the key");
        }
    }

    async fn a_rejected_key_and_an_unreachable_account_are_distinct_422s(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let body = error_body(app.post("/api/v1/connections", &create_body(&app, &account.api_url, "wrong-token")).await, 422).await;
        assert_eq!(body["error"]["code"], "destination_auth_failed");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let body = error_body(app.post("/api/v1/connections", &create_body(&app, &format!("http://{closed}"), "x")).await, 422).await;
        assert_eq!(body["error"]["code"], "destination_unreachable");
    }

    async fn a_slow_account_answers_422_destination_timeout_within_five_seconds(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Latency(Duration::from_secs(6)), count: 1 });
        let started = Instant::now();
        let body = error_body(app.post("/api/v1/connections", &create_body(&app, &account.api_url, &account.token)).await, 422).await;
        assert_eq!(body["error"]["code"], "destination_timeout");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    async fn invalid_connection_fields_are_400s_and_other_types_422(app: TestApp) {
        let ws = app.creds.workspace_id.to_string();
        let cases = [
            (json!({"type": "activecampaign", "name": "x", "metadata": {"api_url": "http://a.b", "api_key": "k"}}), "workspace"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "", "metadata": {"api_url": "http://a.b", "api_key": "k"}}), "name"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x".repeat(129), "metadata": {"api_url": "http://a.b", "api_key": "k"}}), "name"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x", "metadata": {"api_key": "k"}}), "metadata.api_url"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x", "metadata": {"api_url": "http://a.b"}}), "metadata.api_key"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x", "metadata": "nope"}), "metadata"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x", "metadata": {"api_url": "http://a.b", "api_key": "k", "rate_limit_per_second": 0}}), "metadata.rate_limit_per_second"),
            (json!({"workspace": ws, "type": "activecampaign", "name": "x", "metadata": {"api_url": "ftp://a.b", "api_key": "k"}}), "metadata.api_url"),
        ];
        for (input, param) in cases {
            let body = error_body(app.post("/api/v1/connections", &input).await, 400).await;
            assert_eq!(body["error"]["data"][0]["param"], param, "{input}");
        }
        let body = error_body(app.post("/api/v1/connections", &json!({"workspace": ws, "type": "hubspot", "name": "x", "metadata": {"api_url": "http://a.b", "api_key": "k"}})).await, 422).await;
        assert_eq!(body["error"]["code"], "integration_not_supported");
        assert!(body["error"]["message"].as_str().unwrap().contains("activecampaign"));
    }

    async fn update_keeps_the_key_when_omitted_and_rechecks_a_new_one(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let id = app.connection_for(&account).await;
        let path = format!("/api/v1/connections/{id}");
        let c: Value = app.put(&path, &json!({"name": "Renamed", "metadata": {"api_url": account.api_url}})).await.json().await.unwrap();
        assert_eq!(c["name"], "Renamed");
        let body = error_body(app.put(&path, &json!({"metadata": {"api_url": account.api_url, "api_key": "bad"}})).await, 422).await;
        assert_eq!(body["error"]["code"], "destination_auth_failed");
        // The failed update changed nothing: the stored key still works for live actions.
        sandbox.seed_tag(&account.name, "onboarding-step-3-done");
        assert_eq!(app.get(&format!("{path}/actions")).await.status(), 200);
        let c: Value = app.put(&path, &json!({"metadata": {"api_url": account.api_url, "rate_limit_per_second": 50}})).await.json().await.unwrap();
        assert_eq!(c["metadata"]["rate_limit_per_second"], 50);
        assert_eq!(c["name"], "Renamed");
    }

    async fn live_actions_list_the_accounts_tags_and_lists(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let tag = sandbox.seed_tag(&account.name, "onboarding-step-3-done");
        let list = sandbox.seed_list(&account.name, "Onboarding");
        let id = app.connection_for(&account).await;
        let actions: Value = app.get(&format!("/api/v1/connections/{id}/actions")).await.json().await.unwrap();
        assert_eq!(actions["add_tag"]["tags"], json!([{"id": tag.to_string(), "name": "onboarding-step-3-done"}]));
        assert_eq!(actions["add_to_list"]["lists"], json!([{"id": list.to_string(), "name": "Onboarding"}]));
        assert_eq!(actions["remove_tag"]["tags"], actions["add_tag"]["tags"]);
    }

    async fn a_connection_in_use_is_409_unless_forced(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let id = app.connection_for(&account).await;
        let rule = app.rule_for(&id, json!({})).await;
        let path = format!("/api/v1/connections/{id}");
        let body = error_body(app.client.delete(app.url(&path)).header("Authorization", app.bearer()).send().await.unwrap(), 409).await;
        assert_eq!(body["error"]["code"], "connection_in_use");
        let resp = app.client.delete(app.url(&path)).header("Authorization", app.bearer())
            .json(&json!({"force_delete": true})).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let summary: Value = resp.json().await.unwrap();
        assert_eq!(summary, json!({"id": id, "type": "activecampaign"}));
        error_body(app.get(&format!("/api/v1/rules/{rule}")).await, 404).await;
        error_body(app.get(&path).await, 404).await;
    }

    async fn another_organization_cannot_see_or_touch_our_connections(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let id = app.connection_for(&account).await;
        let other = app.other_org().await;
        let bearer = format!("Bearer {}", TestApp::jwt_for(&other));
        let path = format!("/api/v1/connections/{id}");
        for (method, p) in [(reqwest::Method::GET, path.clone()), (reqwest::Method::PUT, path.clone()), (reqwest::Method::DELETE, path.clone()), (reqwest::Method::GET, format!("{path}/actions"))] {
            let mut req = app.client.request(method.clone(), app.url(&p)).header("Authorization", &bearer);
            if method == reqwest::Method::PUT {
                req = req.json(&json!({"name": "Mine now"}));
            }
            error_body(req.send().await.unwrap(), 404).await;
        }
        let mut body = create_body(&app, &account.api_url, &account.token);
        body["workspace"] = json!(app.creds.workspace_id.to_string());
        let resp = app.client.post(app.url("/api/v1/connections")).header("Authorization", &bearer).json(&body).send().await.unwrap();
        error_body(resp, 404).await;
        let list: Value = app.client.get(app.url("/api/v1/connections")).header("Authorization", &bearer).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["count"], 0);
    }

    async fn the_catalog_describes_activecampaign(app: TestApp) {
        let page: Value = app.get("/api/v1/integrations").await.json().await.unwrap();
        assert_eq!(page["count"], 1);
        let ac = &page["records"][0];
        assert_eq!(ac["type"], "activecampaign");
        assert_eq!(ac["authentication"]["type"], "api_key");
        let keys: Vec<_> = ac["authentication"]["fields"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["api_url", "api_key"]);
        for action in ["add_tag", "remove_tag", "add_to_list", "remove_from_list", "sync_contact"] {
            assert_eq!(ac["actions"][action]["key"], action);
        }
    }
}

mod sqlite_only {
    use super::*;
    use handoff::storage::testing::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loopback_api_url_is_refused_unless_private_networks_are_allowed() {
        let app = TestApp::spawn(
            TestDb::sqlite().await,
            &[("HANDOFF__DESTINATIONS__ALLOW_PRIVATE_NETWORKS", "false")],
        )
        .await;
        let (_sandbox, account) = sandbox_account().await;
        let body = error_body(
            app.post(
                "/api/v1/connections",
                &create_body(&app, &account.api_url, &account.token),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(body["error"]["code"], "destination_not_allowed");
        let body = error_body(
            app.post(
                "/api/v1/connections",
                &create_body(&app, "http://localhost:9/x", "k"),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(body["error"]["code"], "destination_not_allowed");
    }
}
