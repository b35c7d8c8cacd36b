//! `POST /api/v1/events/bulk`.

use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, error_body, onboarding_event};

async fn bulk(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/events/bulk"))
        .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
        .json(body)
        .send()
        .await
        .unwrap()
}

app_tests! {
    async fn all_valid_items_are_accepted_with_201(app: TestApp) {
        let resp = bulk(&app, &json!([onboarding_event(), onboarding_event()])).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["count"], 2);
        assert_eq!(body["error_count"], 0);
        assert_eq!(body["records"][1]["type"], "event");
    }

    async fn partial_success_is_207_in_input_order(app: TestApp) {
        let items = json!([onboarding_event(), {"event": "x", "payload": {}}, onboarding_event()]);
        let resp = bulk(&app, &items).await;
        assert_eq!(resp.status(), 207);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["count"], 3);
        assert_eq!(body["error_count"], 1);
        let r = body["records"].as_array().unwrap();
        assert_eq!(r[0]["type"], "event");
        assert_eq!(r[1]["index"], 1);
        assert_eq!(r[1]["message"], "Bad Request");
        assert_eq!(r[1]["error"]["code"], "invalid_payload");
        assert_eq!(r[1]["error"]["data"][0]["param"], "[1].payload");
        assert_eq!(r[2]["type"], "event");
        for accepted in [&r[0], &r[2]] {
            let id: uuid::Uuid = accepted["id"].as_str().unwrap().parse().unwrap();
            assert!(app.store.get_event(app.creds.organization_id, id.into()).await.unwrap().is_some());
        }
    }

    async fn no_valid_item_is_400_with_every_item_error(app: TestApp) {
        let resp = bulk(&app, &json!([{"event": ""}, {"payload": {"a": 1}}])).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error_count"], 2);
        assert_eq!(body["records"][0]["index"], 0);
        assert_eq!(body["records"][1]["index"], 1);
    }

    async fn a_bad_bulk_body_is_a_400_in_the_error_shape(app: TestApp) {
        error_body(bulk(&app, &json!([])).await, 400).await;
        error_body(bulk(&app, &json!({"event": "x"})).await, 400).await;
        let too_many: Vec<Value> = vec![onboarding_event(); 101];
        error_body(bulk(&app, &json!(too_many)).await, 400).await;
    }

    async fn machine_key_items_name_their_workspace_and_a_foreign_one_is_an_item_error(app: TestApp) {
        let other = app.other_org().await;
        let mut mine = onboarding_event();
        mine["workspace"] = json!(app.creds.workspace_id.to_string());
        let mut theirs = onboarding_event();
        theirs["workspace"] = json!(other.workspace_id.to_string());
        let resp = app.post("/api/v1/events/bulk", &json!([mine, theirs, onboarding_event()])).await;
        assert_eq!(resp.status(), 207);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["records"][0]["created_by"], "machine_key");
        assert_eq!(body["records"][1]["error"]["code"], "workspace_not_found");
        assert_eq!(body["records"][2]["error"]["data"][0]["param"], "[2].workspace");
    }
}
