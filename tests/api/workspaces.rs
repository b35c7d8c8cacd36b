//! Workspaces: create, list with cursors, get with the publishable key, update, rotate.

use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{error_body, onboarding_event};

app_tests! {
    async fn a_created_workspace_is_wrapped_and_readable_with_its_key(app: TestApp) {
        let resp = app.post("/api/v1/workspaces", &json!({"name": "Growth team", "description": "Trials"})).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        let w = &body["workspace"];
        assert_eq!(w["name"], "Growth team");
        assert_eq!(w["description"], "Trials");
        for k in ["id", "created_at", "updated_at"] {
            assert!(w[k].is_string(), "{k}");
        }
        let got: Value = app.get(&format!("/api/v1/workspaces/{}", w["id"].as_str().unwrap())).await.json().await.unwrap();
        assert_eq!(got["name"], "Growth team");
        let key = got["publishable_key"]["public_key"].as_str().unwrap();
        assert!(handoff::auth::keys::is_publishable_key(key), "{key}");
        assert!(got["publishable_key"]["name"].is_string());
    }

    async fn invalid_workspace_fields_are_400_naming_them(app: TestApp) {
        let cases = [
            (json!({}), "name"),
            (json!({"name": "ab"}), "name"),
            (json!({"name": "x".repeat(51)}), "name"),
            (json!({"name": "bad/name"}), "name"),
            (json!({"name": 42}), "name"),
            (json!({"name": "Fine name", "description": "d".repeat(1025)}), "description"),
            (json!({"name": "Fine name", "description": "nul \u{0} here"}), "description"),
        ];
        for (input, param) in cases {
            let body = error_body(app.post("/api/v1/workspaces", &input).await, 400).await;
            assert_eq!(body["error"]["data"][0]["param"], param, "{input}");
        }
    }

    async fn a_duplicate_name_is_409(app: TestApp) {
        assert_eq!(app.post("/api/v1/workspaces", &json!({"name": "Lifecycle"})).await.status(), 201);
        let body = error_body(app.post("/api/v1/workspaces", &json!({"name": "Lifecycle"})).await, 409).await;
        assert_eq!(body["error"]["code"], "workspace_name_taken");
        assert_eq!(body["error"]["name"], "Conflict");
    }

    async fn pages_follow_cursors_newest_first_without_gaps(app: TestApp) {
        for i in 0..5 {
            assert_eq!(app.post("/api/v1/workspaces", &json!({"name": format!("Team {i}")})).await.status(), 201);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/workspaces?limit=2&cursor={c}"),
                None => "/api/v1/workspaces?limit=2".to_owned(),
            };
            let page: Value = app.get(&path).await.json().await.unwrap();
            assert_eq!(page["limit"], 2);
            assert_eq!(page["count"].as_u64().unwrap() as usize, page["records"].as_array().unwrap().len());
            seen.extend(page["records"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["Team 4", "Team 3", "Team 2", "Team 1", "Team 0", "Onboarding"]);
        error_body(app.get("/api/v1/workspaces?cursor=bogus").await, 400).await;
        error_body(app.get("/api/v1/workspaces?limit=0").await, 400).await;
        error_body(app.get("/api/v1/workspaces?limit=201").await, 400).await;
        error_body(app.get("/api/v1/workspaces?limit=ten").await, 400).await;
    }

    async fn update_keeps_an_omitted_description_and_null_clears_it(app: TestApp) {
        let path = format!("/api/v1/workspaces/{}", app.creds.workspace_id);
        let w: Value = app.put(&path, &json!({"name": "Onboarding", "description": "Steps"})).await.json().await.unwrap();
        assert_eq!(w["description"], "Steps");
        let w: Value = app.put(&path, &json!({"name": "Onboarding 2"})).await.json().await.unwrap();
        assert_eq!(w["name"], "Onboarding 2");
        assert_eq!(w["description"], "Steps");
        let w: Value = app.put(&path, &json!({"name": "Onboarding 2", "description": null})).await.json().await.unwrap();
        assert_eq!(w["description"], Value::Null);
        error_body(app.put(&path, &json!({"name": "x"})).await, 400).await;
        app.post("/api/v1/workspaces", &json!({"name": "Taken"})).await;
        error_body(app.put(&path, &json!({"name": "Taken"})).await, 409).await;
        error_body(app.put("/api/v1/workspaces/not-a-uuid", &json!({"name": "Whatever"})).await, 404).await;
    }

    async fn rotating_the_publishable_key_retires_the_old_one_at_once(app: TestApp) {
        let old = app.creds.publishable_key.clone();
        let resp = app.client.post(app.url(&format!("/api/v1/workspaces/{}/publishable-key/rotate", app.creds.workspace_id)))
            .header("Authorization", app.bearer()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let new = body["publishable_key"]["public_key"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        let with = |key: String| app.client.post(app.url("/api/v1/events"))
            .header("X-Meshes-Publishable-Key", key).json(&onboarding_event()).send();
        assert_eq!(with(old).await.unwrap().status(), 401);
        assert_eq!(with(new).await.unwrap().status(), 201);
    }
}
