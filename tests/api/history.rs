//! Delivery history and the support levers, end to end over HTTP against the sandbox: find an
//! event by email, read its attempts and calls, fix the cause, retry, replay, cancel.

use std::time::Duration;

use handoff::domain::{DeliveryStatus, OutcomeCode};
use handoff::sandbox::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{error_body, eventually, onboarding_event, sandbox_account};

const SOON: Duration = Duration::from_secs(10);

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    resp.json().await.unwrap()
}

app_tests! {
    async fn support_finds_a_rejected_key_by_email_and_the_fix_delivers_by_itself(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.set_token(&account.name, "rotated-token");
        let event = app.send_for_id(&onboarding_event()).await;
        // Another contact's event, which the email filter must leave out.
        let mut other = onboarding_event();
        other["payload"]["email"] = json!("sam@elsewhere.io");
        app.send_for_id(&other).await;

        // "alex@northstar.io finished step 3 — was the tag applied?" Any letter case finds it.
        let found = eventually(SOON, "the parked delivery", || async {
            let page = json_of(app.get("/api/v1/events?email=Alex@Northstar.io").await, 200).await;
            (page["records"][0]["status"] == "retrying").then_some(page)
        }).await;
        assert_eq!(found["count"], 1, "{found}");
        let record = &found["records"][0];
        assert_eq!(record["id"], event.to_string());
        assert_eq!(record["type"], "event");
        let ws = app.creds.workspace_id;
        let in_ws = json_of(app.get(&format!("/api/v1/workspaces/{ws}/events?email=alex@northstar.io")).await, 200).await;
        assert_eq!(in_ws["records"][0]["id"], event.to_string());

        // Why not: the rule event says parked, its attempt says auth_failed and shows the call.
        let detail = json_of(app.get(&format!("/api/v1/events/{event}")).await, 200).await;
        let re = &detail["rule_events"][0];
        assert_eq!(re["type"], "rule");
        assert_eq!(re["status"], "retrying");
        assert_eq!(re["next_attempt_at"], Value::Null);
        assert!(re["last_error"].as_str().unwrap().contains("key"), "{re}");
        assert_eq!(re["connection"], conn);
        let re_id = re["id"].as_str().unwrap().to_owned();
        let attempts = json_of(app.get(&format!("/api/v1/events/{event}/rules/{re_id}/attempts")).await, 200).await;
        let attempt = &attempts["records"][0];
        assert_eq!(attempt["outcome_code"], "auth_failed");
        assert_eq!(attempt["http_status"], 403);
        let call = &attempt["calls"][0];
        assert_eq!(call["status"], 403);
        assert!(call["path"].as_str().unwrap().ends_with("/api/3/contact/sync"), "{call}");
        assert!(!call["path"].as_str().unwrap().contains("rotated-token"));
        let one = json_of(app.get(&format!("/api/v1/events/{event}/rules/{re_id}/attempts/{}", attempt["id"].as_str().unwrap())).await, 200).await;
        assert_eq!(one["id"], attempt["id"]);
        // The rule's id names the same delivery.
        let rule = re["rule"].as_str().unwrap();
        let by_rule = json_of(app.get(&format!("/api/v1/events/{event}/rules/{rule}/attempts")).await, 200).await;
        assert_eq!(by_rule["records"][0]["id"], attempt["id"]);

        // Fix the connection: the parked delivery completes with no further call from support.
        let resp = app.put(&format!("/api/v1/connections/{conn}"), &json!({"metadata": {"api_url": account.api_url, "api_key": "rotated-token"}})).await;
        assert_eq!(resp.status(), 200);
        app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(sandbox.contact_tags_by_email(&account.name, "alex@northstar.io"), ["onboarding-step-3-done"]);
        let detail = json_of(app.get(&format!("/api/v1/events/{event}")).await, 200).await;
        assert_eq!(detail["status"], "completed");
        assert_eq!(detail["completed_count"], 1);
        let payload = json_of(app.get(&format!("/api/v1/events/{event}/payload")).await, 200).await;
        assert_eq!(payload["payload"]["email"], "alex@northstar.io");
        assert_eq!(payload["rule_events"][0]["status"], "completed");
        // A completed delivery is not retried again.
        error_body(app.post(&format!("/api/v1/events/{event}/rules/{re_id}/retry"), &json!({})).await, 409).await;
    }

    async fn a_permanent_failure_is_retried_by_hand_once_the_rule_is_fixed(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({"metadata": {"action": "add_to_list", "id": "999"}})).await;
        let event = app.send_for_id(&onboarding_event()).await;
        let failed = app.wait_rule_event(event, DeliveryStatus::Failed, SOON).await;
        assert_eq!(app.attempts(failed.id).await[0].outcome_code, OutcomeCode::RejectedClientError);
        let listed = json_of(app.get("/api/v1/events?status=failed").await, 200).await;
        assert_eq!(listed["records"][0]["id"], event.to_string());

        let list = sandbox.seed_list(&account.name, "Onboarding");
        let resp = app.put(&format!("/api/v1/rules/{rule}"), &json!({"connection": conn, "event": "page.completed",
            "metadata": {"action": "add_to_list", "id": list.to_string()}})).await;
        assert_eq!(resp.status(), 200);
        let retried = json_of(app.post(&format!("/api/v1/events/{event}/rules/{rule}/retry"), &json!({})).await, 200).await;
        assert_eq!(retried["id"], failed.id.to_string());
        // Queued to run now: a worker may already hold it by the time the answer is read.
        assert!(["retrying", "processing", "completed"].contains(&retried["status"].as_str().unwrap()), "{retried}");
        app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(sandbox.list_memberships_by_email(&account.name, "alex@northstar.io").len(), 1);
        assert_eq!(app.attempts(failed.id).await.len(), 2);
    }

    async fn a_retry_is_too_early_while_the_next_attempt_is_due_within_five_seconds(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Status { status: 500, body: Default::default(), retry_after: None }, count: 1 });
        let event = app.send_for_id(&onboarding_event()).await;
        let waiting = app.wait_rule_event(event, DeliveryStatus::Retrying, SOON).await;
        let resp = app.post(&format!("/api/v1/events/{event}/rules/{}/retry", waiting.id), &json!({})).await;
        assert_eq!(resp.headers()["retry-after"], "5");
        let body = error_body(resp, 425).await;
        assert_eq!(body["error"]["code"], "delivery_in_progress");
        assert_eq!(body["error"]["name"], "TooEarly");
    }

    async fn cancel_stops_an_attempt_in_flight_from_applying_and_any_later_one(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Latency(Duration::from_millis(800)), count: 1 });
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Status { status: 500, body: Default::default(), retry_after: None }, count: 10 });
        let event = app.send_for_id(&onboarding_event()).await;
        let running = app.wait_rule_event(event, DeliveryStatus::Processing, SOON).await;
        let canceled = json_of(app.post(&format!("/api/v1/events/{event}/rules/{}/cancel", running.id), &json!({})).await, 200).await;
        assert_eq!(canceled["status"], "canceled");
        assert_eq!(canceled["next_attempt_at"], Value::Null);
        // The attempt in flight ends (and is recorded) but does not schedule a retry.
        eventually(SOON, "the in-flight attempt recorded", || async { (app.attempts(running.id).await.len() == 1).then_some(()) }).await;
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let after = app.rule_events(event).await.remove(0);
        assert_eq!(after.status, DeliveryStatus::Canceled);
        assert_eq!(app.attempts(running.id).await.len(), 1, "no attempt after the cancel");
        let detail = json_of(app.get(&format!("/api/v1/events/{event}")).await, 200).await;
        assert_eq!(detail["status"], "canceled");
        // Canceling again is harmless; a canceled delivery is not retried.
        assert_eq!(app.post(&format!("/api/v1/events/{event}/rules/{}/cancel", running.id), &json!({})).await.status(), 200);
        error_body(app.post(&format!("/api/v1/events/{event}/rules/{}/retry", running.id), &json!({})).await, 409).await;
    }

    async fn cancel_of_an_event_stops_its_pending_deliveries(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        app.rule_for(&conn, json!({"metadata": {"action": "add_tag", "tag": "second"}})).await;
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Status { status: 503, body: Default::default(), retry_after: None }, count: 20 });
        let event = app.send_for_id(&onboarding_event()).await;
        eventually(SOON, "both retrying", || async {
            app.rule_events(event).await.iter().all(|r| r.status == DeliveryStatus::Retrying).then_some(())
        }).await;
        let detail = json_of(app.client.post(app.url(&format!("/api/v1/events/{event}/cancel")))
            .header("Authorization", app.bearer()).send().await.unwrap(), 200).await;
        assert_eq!(detail["status"], "canceled");
        let statuses: Vec<_> = detail["rule_events"].as_array().unwrap().iter().map(|r| r["status"].clone()).collect();
        assert_eq!(statuses, [json!("canceled"), json!("canceled")]);
    }

    async fn a_replay_requeues_a_window_of_failures_and_nothing_else(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({"metadata": {"action": "add_to_list", "id": "999"}})).await;
        let early = app.send_for_id(&onboarding_event()).await;
        app.wait_rule_event(early, DeliveryStatus::Failed, SOON).await;
        let since = handoff::domain::now();
        let mut events = Vec::new();
        for n in 0..3 {
            let mut body = onboarding_event();
            body["payload"]["email"] = json!(format!("user{n}@northstar.io"));
            events.push(app.send_for_id(&body).await);
        }
        for e in &events {
            app.wait_rule_event(*e, DeliveryStatus::Failed, SOON).await;
        }
        let list = sandbox.seed_list(&account.name, "Onboarding");
        let resp = app.put(&format!("/api/v1/rules/{rule}"), &json!({"connection": conn, "event": "page.completed",
            "metadata": {"action": "add_to_list", "id": list.to_string()}})).await;
        assert_eq!(resp.status(), 200);

        let ws = app.creds.workspace_id;
        let since = handoff::http::timestamp(since);
        let first = json_of(app.post(&format!("/api/v1/workspaces/{ws}/replay"), &json!({"status": "failed", "since": since, "limit": 2})).await, 200).await;
        assert_eq!(first, json!({"count": 2, "has_more": true}));
        let second = json_of(app.post(&format!("/api/v1/workspaces/{ws}/replay"), &json!({"status": "failed", "since": since, "rule": rule})).await, 200).await;
        assert_eq!(second["count"], 1);
        for e in &events {
            app.wait_rule_event(*e, DeliveryStatus::Completed, SOON).await;
        }
        // The failure before the window stays failed.
        assert_eq!(app.rule_events(early).await[0].status, DeliveryStatus::Failed);
        let none = json_of(app.post(&format!("/api/v1/workspaces/{ws}/replay"), &json!({"status": "failed", "since": since})).await, 200).await;
        assert_eq!(none, json!({"count": 0, "has_more": false}));
    }

    async fn replay_and_the_filters_refuse_bad_input_by_name(app: TestApp) {
        let ws = app.creds.workspace_id;
        let path = format!("/api/v1/workspaces/{ws}/replay");
        for (body, param) in [
            (json!({"since": "2026-01-01T00:00:00Z"}), "status"),
            (json!({"status": "completed", "since": "2026-01-01T00:00:00Z"}), "status"),
            (json!({"status": "failed"}), "since"),
            (json!({"status": "failed", "since": "yesterday"}), "since"),
            (json!({"status": "failed", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), "until"),
            (json!({"status": "failed", "since": "2026-01-01T00:00:00Z", "limit": 10001}), "limit"),
            (json!({"status": "failed", "since": "2026-01-01T00:00:00Z", "connection": "nope"}), "connection"),
            (json!({"status": 7, "since": "2026-01-01T00:00:00Z"}), "status"),
        ] {
            let body = error_body(app.post(&path, &body).await, 400).await;
            assert_eq!(body["error"]["data"][0]["param"], param, "{body}");
        }
        error_body(app.post(&path, &json!([1])).await, 400).await;
        for query in ["status=lost", "email=not-an-email", "limit=0", "cursor=garbage", "event=a%00b", "resource_id=%00"] {
            error_body(app.get(&format!("/api/v1/events?{query}")).await, 400).await;
            error_body(app.get(&format!("/api/v1/workspaces/{ws}/events?{query}")).await, 400).await;
        }
        error_body(app.get("/api/v1/rules?event=%00").await, 400).await;
        error_body(app.get("/api/v1/events/not-a-uuid").await, 404).await;
        error_body(app.get(&format!("/api/v1/events/{}", uuid::Uuid::now_v7())).await, 404).await;
    }

    async fn send_test_event_calls_the_destination_and_is_stored_as_a_test(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({"active": false})).await;
        let attempt = json_of(app.post(&format!("/api/v1/rules/{rule}/test"), &json!({"payload": {"email": "test@northstar.io", "sequence_step": 9}})).await, 200).await;
        assert_eq!(attempt["outcome_code"], "delivered", "{attempt}");
        assert_eq!(attempt["test"], true);
        assert_eq!(attempt["attempt_number"], 1);
        assert!(attempt["calls"].as_array().unwrap().len() >= 2, "{attempt}");
        assert_eq!(sandbox.contact_tags_by_email(&account.name, "test@northstar.io"), ["onboarding-step-9-done"]);
        // Stored in history, marked as a test, and left alone by replay.
        let event = attempt["event_id"].as_str().unwrap();
        let detail = json_of(app.get(&format!("/api/v1/events/{event}")).await, 200).await;
        assert_eq!(detail["created_by"], "send_test_event");
        assert_eq!(detail["status"], "completed");
        assert_eq!(detail["rule_events"][0]["rule"], rule);
        let re = detail["rule_events"][0]["id"].as_str().unwrap();
        let stored = json_of(app.get(&format!("/api/v1/events/{event}/rules/{re}/attempts")).await, 200).await;
        assert_eq!(stored["records"][0]["id"], attempt["id"]);
        assert_eq!(stored["records"][0]["test"], true);

        // Without a payload the sample has no sequence_step: the template's missing field is a mapping error.
        let sample = json_of(app.post(&format!("/api/v1/rules/{rule}/test"), &json!({})).await, 200).await;
        assert_eq!(sample["outcome_code"], "mapping_error", "{sample}");
        assert!(sample["error"].as_str().unwrap().contains("sequence_step"), "{sample}");
        let failed = json_of(app.get(&format!("/api/v1/events/{}", sample["event_id"].as_str().unwrap())).await, 200).await;
        assert_eq!(failed["status"], "failed");
        let retry = app.post(&format!("/api/v1/events/{}/rules/{}/retry", sample["event_id"].as_str().unwrap(), sample["rule_event_id"].as_str().unwrap()), &json!({})).await;
        assert_eq!(error_body(retry, 409).await["error"]["code"], "test_delivery");
        let ws = app.creds.workspace_id;
        let replayed = json_of(app.post(&format!("/api/v1/workspaces/{ws}/replay"), &json!({"status": "failed", "since": "2020-01-01T00:00:00Z"})).await, 200).await;
        assert_eq!(replayed["count"], 0);

        error_body(app.post(&format!("/api/v1/rules/{rule}/test"), &json!({"payload": {"email": "nope"}})).await, 400).await;
        error_body(app.post(&format!("/api/v1/rules/{rule}/test"), &json!({"payload": "text"})).await, 400).await;
        error_body(app.post(&format!("/api/v1/rules/{}/test", uuid::Uuid::now_v7()), &json!({})).await, 404).await;
    }

    async fn send_test_event_answers_422_when_the_destination_is_too_slow(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Latency(Duration::from_millis(4500)), count: 1 });
        let started = std::time::Instant::now();
        let body = error_body(app.post(&format!("/api/v1/rules/{rule}/test"), &json!({"payload": {"email": "t@northstar.io", "sequence_step": 1}})).await, 422).await;
        assert!(started.elapsed() < Duration::from_millis(4900), "{:?}", started.elapsed());
        assert_eq!(body["error"]["code"], "destination_timeout");
        let tests = json_of(app.get("/api/v1/events?limit=1").await, 200).await;
        assert_eq!(tests["records"][0]["created_by"], "send_test_event");
        assert_eq!(tests["records"][0]["status"], "failed");
    }
}
