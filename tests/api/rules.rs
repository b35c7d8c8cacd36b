//! Rules: CRUD, validation naming each field, tenant isolation, and fan-out at ingest (same node and across nodes).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, error_body, onboarding_event, sandbox_account};

app_tests! {
    async fn a_rule_is_created_wrapped_and_read_back(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let resp = app.post("/api/v1/rules", &json!({"workspace": app.creds.workspace_id.to_string(), "connection": conn,
            "event": "page.completed", "resource": "onboarding_sequence",
            "metadata": {"action": "add_tag", "tag": "onboarding-step-{{payload.sequence_step}}-done"},
            "conditions": [{"path": "payload.page_id", "op": "eq", "value": "page_connect-crm"}]})).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        let r = &body["rule"];
        assert_eq!(r["type"], "activecampaign");
        assert_eq!(r["connection"], conn);
        assert_eq!(r["active"], true);
        assert_eq!(r["resource_id"], Value::Null);
        assert_eq!(r["metadata"]["tag"], "onboarding-step-{{payload.sequence_step}}-done");
        assert_eq!(r["conditions"][0]["op"], "eq");
        let id = r["id"].as_str().unwrap();
        let got: Value = app.get(&format!("/api/v1/rules/{id}")).await.json().await.unwrap();
        assert_eq!(&got, r);
    }

    async fn every_invalid_rule_field_is_a_400_naming_it(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let ws = app.creds.workspace_id.to_string();
        let base = json!({"workspace": ws, "connection": conn, "event": "page.completed", "metadata": {"action": "add_tag", "id": "64"}});
        let with = |k: &str, v: Value| { let mut b = base.clone(); b[k] = v; b };
        let cases = [
            (with("event", json!("")), "event"),
            (with("connection", json!("nope")), "connection"),
            (with("workspace", json!(7)), "workspace"),
            (with("metadata", json!({"action": "explode"})), "metadata.action"),
            (with("metadata", json!({"action": "add_tag"})), "metadata.id"),
            (with("metadata", json!({"action": "add_tag", "tag": "step-{{payload.}}"})), "metadata.tag"),
            (with("conditions", json!([{"path": "payload.x", "op": "near", "value": 1}])), "conditions[0].op"),
            (with("resource_id", json!("has space")), "resource_id"),
            (with("active", json!("yes")), "active"),
        ];
        for (input, param) in cases {
            let body = error_body(app.post("/api/v1/rules", &input).await, 400).await;
            let params: Vec<_> = body["error"]["data"].as_array().unwrap().iter().map(|d| d["param"].as_str().unwrap().to_owned()).collect();
            assert!(params.contains(&param.to_owned()), "{input}: {params:?}");
        }
    }

    async fn a_connection_of_another_workspace_is_404(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let other_ws: Value = app.post("/api/v1/workspaces", &json!({"name": "Second"})).await.json().await.unwrap();
        let body = error_body(app.post("/api/v1/rules", &json!({"workspace": other_ws["workspace"]["id"], "connection": conn,
            "event": "page.completed", "metadata": {"action": "add_tag", "id": "1"}})).await, 404).await;
        assert_eq!(body["error"]["code"], "connection_not_found");
    }

    async fn rules_are_listed_with_equality_filters_updated_and_deleted(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let a = app.rule_for(&conn, json!({"resource": "onboarding_sequence"})).await;
        let b = app.rule_for(&conn, json!({"event": "trial.started"})).await;
        let ids = |v: Value| v["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(app.get("/api/v1/rules").await.json().await.unwrap()), [b.clone(), a.clone()]);
        assert_eq!(ids(app.get("/api/v1/rules?event=page.completed").await.json().await.unwrap()), vec![a.clone()]);
        assert_eq!(ids(app.get("/api/v1/rules?resource=onboarding_sequence").await.json().await.unwrap()), vec![a.clone()]);
        assert_eq!(ids(app.get(&format!("/api/v1/workspaces/{}/rules?event=trial.started", app.creds.workspace_id)).await.json().await.unwrap()), vec![b.clone()]);

        let put: Value = app.put(&format!("/api/v1/rules/{a}"), &json!({"connection": conn, "event": "page.completed",
            "active": false, "metadata": {"action": "add_to_list", "id": 2}})).await.json().await.unwrap();
        assert_eq!(put["active"], false);
        assert_eq!(put["metadata"], json!({"action": "add_to_list", "id": "2"}));
        assert_eq!(put["resource"], Value::Null, "PUT replaces every field");

        let resp = app.client.delete(app.url(&format!("/api/v1/rules/{a}"))).header("Authorization", app.bearer()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let summary: Value = resp.json().await.unwrap();
        assert_eq!(summary, json!({"id": a, "connection": conn, "type": "activecampaign", "event": "page.completed", "resource": null, "resource_id": null}));
        error_body(app.get(&format!("/api/v1/rules/{a}")).await, 404).await;
    }

    async fn another_organization_gets_404_for_our_rules(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({})).await;
        let other = app.other_org().await;
        let bearer = format!("Bearer {}", TestApp::jwt_for(&other));
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let resp = app.client.request(method, app.url(&format!("/api/v1/rules/{rule}"))).header("Authorization", &bearer).send().await.unwrap();
            error_body(resp, 404).await;
        }
        let resp = app.client.get(app.url(&format!("/api/v1/workspaces/{}/rules", app.creds.workspace_id))).header("Authorization", &bearer).send().await.unwrap();
        error_body(resp, 404).await;
        let list: Value = app.client.get(app.url("/api/v1/rules")).header("Authorization", &bearer).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["count"], 0);
    }

    async fn matching_rules_fan_out_at_ingest_and_a_deleted_rule_stops_matching(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        assert_eq!(app.fan_out_of(&onboarding_event()).await, 0);
        let tag = app.rule_for(&conn, json!({"conditions": [{"path": "payload.sequence_step", "op": "gte", "value": 3}]})).await;
        app.rule_for(&conn, json!({"metadata": {"action": "add_to_list", "id": "2"}, "resource_id": "workspace-setup"})).await;
        app.rule_for(&conn, json!({"active": false})).await;
        app.rule_for(&conn, json!({"conditions": [{"path": "payload.sequence_step", "op": "eq", "value": "3"}]})).await;
        assert_eq!(app.fan_out_of(&onboarding_event()).await, 2, "two active rules match; the string '3' never equals the number 3");
        let mut step2 = onboarding_event();
        step2["payload"]["sequence_step"] = json!(2);
        assert_eq!(app.fan_out_of(&step2).await, 1);
        app.client.delete(app.url(&format!("/api/v1/rules/{tag}"))).header("Authorization", app.bearer()).send().await.unwrap();
        assert_eq!(app.fan_out_of(&onboarding_event()).await, 1);
    }
}

mod postgres_only {
    use super::*;
    use handoff::storage::testing::TestDb;

    /// Sends the onboarding event to `node` until it fans out to `want` rule events, for at most `within`.
    async fn wait_for_fan_out(
        app: &TestApp,
        node: std::net::SocketAddr,
        want: i64,
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let resp = app
                .client
                .post(format!("http://{node}/api/v1/events"))
                .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
                .json(&onboarding_event())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            let id: uuid::Uuid = v["event"]["id"].as_str().unwrap().parse().unwrap();
            let e = app
                .store
                .get_event(app.creds.organization_id, id.into())
                .await
                .unwrap()
                .unwrap();
            if e.total_rules == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "node {node} still fans out to {} after {within:?}",
                e.total_rules
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rule_created_on_one_node_matches_on_another_within_a_second() {
        let Some(db) = TestDb::postgres().await else {
            eprintln!("skipped: no TEST_DATABASE_URL");
            return;
        };
        let app = TestApp::spawn(db, &[]).await;
        let node_b = app.spawn_node().await;
        // Warm node B's cache with the empty rule set first, so only invalidation can make it see the rule.
        wait_for_fan_out(&app, node_b, 0, Duration::from_secs(1)).await;
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({})).await;
        wait_for_fan_out(&app, node_b, 1, Duration::from_secs(1)).await;
        app.client
            .delete(app.url(&format!("/api/v1/rules/{rule}")))
            .header("Authorization", app.bearer())
            .send()
            .await
            .unwrap();
        wait_for_fan_out(&app, node_b, 0, Duration::from_secs(1)).await;
    }
}
