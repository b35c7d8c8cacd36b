//! `POST /api/v1/events`.

use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, error_body, onboarding_event};

app_tests! {
    async fn the_onboarding_event_is_accepted_with_the_meshes_shape(app: TestApp) {
        let resp = app.send_event(&onboarding_event()).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        let e = &body["event"];
        assert_eq!(e["type"], "event");
        assert_eq!(e["event"], "page.completed");
        assert_eq!(e["resource"], "onboarding_sequence");
        assert_eq!(e["resource_id"], "workspace-setup");
        assert_eq!(e["workspace"], app.creds.workspace_id.to_string());
        assert_eq!(e["created_by"], "publishable_key");
        let id: uuid::Uuid = e["id"].as_str().unwrap().parse().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).is_ok());
        let stored = app.store.get_event(app.creds.organization_id, id.into()).await.unwrap().unwrap();
        assert_eq!(stored.event, "page.completed");
    }

    async fn every_validation_rule_answers_400_naming_the_field(app: TestApp) {
        let long = "x".repeat(129);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"payload": {"a": 1}}), "event", "invalid_event"),
            (json!({"event": " ", "payload": {"a": 1}}), "event", "invalid_event"),
            (json!({"event": long, "payload": {"a": 1}}), "event", "invalid_event"),
            (json!({"event": "x"}), "payload", "invalid_payload"),
            (json!({"event": "x", "payload": {}}), "payload", "invalid_payload"),
            (json!({"event": "x", "payload": {"a": null, "b": " ", "c": [], "d": {}}}), "payload", "invalid_payload"),
            (json!({"event": "x", "payload": "text"}), "payload", "invalid_payload"),
            (json!({"event": "x", "payload": {"email": "not-an-address"}}), "payload.email", "invalid_payload"),
            (json!({"event": "x", "payload": {"a": 1}, "resource_id": "has space"}), "resource_id", "invalid_resource_id"),
            (json!({"event": "x", "payload": {"a": 1}, "resource": ""}), "resource", "invalid_resource"),
            (json!([1, 2]), "body", "validation_failed"),
        ];
        for (input, param, code) in cases {
            let body = error_body(app.send_event(&input).await, 400).await;
            assert_eq!(body["message"], "Bad Request", "{input}");
            assert_eq!(body["error"]["name"], "BadRequest");
            assert_eq!(body["error"]["code"], code, "{input}: {body}");
            assert_eq!(body["error"]["data"][0]["param"], param, "{input}: {body}");
        }
    }

    async fn missing_or_bad_publishable_keys_get_401(app: TestApp) {
        let no_key = app.client.post(app.url("/api/v1/events")).json(&onboarding_event()).send().await.unwrap();
        error_body(no_key, 401).await;
        for key in ["nonsense", "mesh_pub_a_b_c", &app.creds.publishable_key.replace("mesh_pub_", "mesh_pub_0")] {
            let resp = app.client.post(app.url("/api/v1/events"))
                .header("X-Meshes-Publishable-Key", key)
                .json(&onboarding_event()).send().await.unwrap();
            error_body(resp, 401).await;
        }
    }

    async fn a_machine_key_must_name_a_workspace_of_its_organization(app: TestApp) {
        let mut ev = onboarding_event();
        let resp = app.post("/api/v1/events", &ev).await;
        let body = error_body(resp, 400).await;
        assert_eq!(body["error"]["data"][0]["param"], "workspace");

        ev["workspace"] = json!(app.creds.workspace_id.to_string());
        let resp = app.post("/api/v1/events", &ev).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["event"]["created_by"], "machine_key");

        let other = app.other_org().await;
        ev["workspace"] = json!(other.workspace_id.to_string());
        let body = error_body(app.post("/api/v1/events", &ev).await, 404).await;
        assert_eq!(body["error"]["code"], "workspace_not_found");

        let basic = app.client.post(app.url("/api/v1/events"))
            .header("Authorization", TestApp::basic_for(&other))
            .json(&ev).send().await.unwrap();
        assert_eq!(basic.status(), 201, "Basic auth with the other org's own workspace");
    }

    async fn a_repeated_idempotency_key_returns_the_original_event(app: TestApp) {
        let send = |key: &'static str, body: Value| {
            let req = app.client.post(app.url("/api/v1/events"))
                .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
                .header("Idempotency-Key", key)
                .json(&body);
            async move { req.send().await.unwrap() }
        };
        let first: Value = send("step-3-usr_5012", onboarding_event()).await.json().await.unwrap();
        let again = send("step-3-usr_5012", onboarding_event()).await;
        assert_eq!(again.status(), 201);
        let again: Value = again.json().await.unwrap();
        assert_eq!(first, again);

        let mut changed = onboarding_event();
        changed["payload"]["sequence_step"] = json!(4);
        let body = error_body(send("step-3-usr_5012", changed).await, 422).await;
        assert_eq!(body["error"]["code"], "idempotency_key_reused");

        let too_long: &'static str = Box::leak("k".repeat(256).into_boxed_str());
        error_body(send(too_long, onboarding_event()).await, 400).await;
    }

    async fn twenty_concurrent_repeats_make_one_event(app: TestApp) {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let req = app.client.post(app.url("/api/v1/events"))
                .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
                .header("Idempotency-Key", "race-1")
                .json(&onboarding_event());
            tasks.push(tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), 201);
                let v: Value = resp.json().await.unwrap();
                v["event"]["id"].as_str().unwrap().to_owned()
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap());
        }
        assert_eq!(ids.len(), 1, "every repeat answers with the one event: {ids:?}");
    }

    async fn the_same_idempotency_key_in_another_workspace_is_a_new_event(app: TestApp) {
        let other = app.other_org().await;
        let mut ids = Vec::new();
        for key in [&app.creds.publishable_key, &other.publishable_key] {
            let resp = app.client.post(app.url("/api/v1/events"))
                .header("X-Meshes-Publishable-Key", key)
                .header("Idempotency-Key", "shared")
                .json(&onboarding_event()).send().await.unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            ids.push(v["event"]["id"].as_str().unwrap().to_owned());
        }
        assert_ne!(ids[0], ids[1]);
    }

    async fn browsers_get_cors_preflight_answers(app: TestApp) {
        let resp = app.client.request(reqwest::Method::OPTIONS, app.url("/api/v1/events"))
            .header("Origin", "https://app.northstar.io")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,x-meshes-publishable-key")
            .send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed.contains("x-meshes-publishable-key"), "{allowed}");
        let post = app.client.post(app.url("/api/v1/events"))
            .header("Origin", "https://app.northstar.io")
            .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
            .json(&onboarding_event()).send().await.unwrap();
        assert_eq!(post.headers()["access-control-allow-origin"], "*");
    }
}

mod sqlite_only {
    use super::*;
    use handoff::storage::testing::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_over_its_rate_gets_429_with_retry_after() {
        let app = TestApp::spawn(
            TestDb::sqlite().await,
            &[("HANDOFF__INGEST__RATE_LIMIT_PER_SECOND", "3")],
        )
        .await;
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..6 {
            let resp = app.send_event(&onboarding_event()).await;
            statuses.push(resp.status().as_u16());
            if resp.status() == 429 {
                retry_after = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = error_body(resp, 429).await;
                assert_eq!(body["error"]["code"], "rate_limited");
            }
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            3,
            "{statuses:?}"
        );
        assert!(statuses.contains(&429));
        assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
        // A bulk call counts each of its events.
        let bulk = app
            .client
            .post(app.url("/api/v1/events/bulk"))
            .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
            .json(&vec![onboarding_event(); 10])
            .send()
            .await
            .unwrap();
        error_body(bulk, 429).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_server_commits_what_it_acknowledged() {
        let app = TestApp::spawn(TestDb::sqlite().await, &[]).await;
        let resp = app.send_event(&onboarding_event()).await;
        assert_eq!(resp.status(), 201);
        let id: uuid::Uuid = resp.json::<Value>().await.unwrap()["event"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let store = app.store.clone();
        let org = app.creds.organization_id;
        app.stop().await;
        assert!(store.get_event(org, id.into()).await.unwrap().is_some());
    }
}
