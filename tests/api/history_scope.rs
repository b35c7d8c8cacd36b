//! Delivery history is tenant-scoped on every endpoint, and its pages stay correct while events
//! arrive.

use std::collections::HashSet;
use std::time::Duration;

use handoff::domain::DeliveryStatus;
use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, error_body, onboarding_event, sandbox_account};

app_tests! {
    async fn every_history_endpoint_is_a_404_to_another_organization(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        let rule = app.rule_for(&conn, json!({})).await;
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Completed, Duration::from_secs(10)).await;
        let attempt = app.attempts(re.id).await.remove(0).id;
        let ws = app.creds.workspace_id;

        let rival = app.other_org().await;
        let auth = TestApp::basic_for(&rival);
        let get = |path: String| {
            let auth = auth.clone();
            let request = app.client.get(app.url(&path)).header("Authorization", auth);
            async move { request.send().await.unwrap() }
        };
        for path in [
            format!("/api/v1/events/{event}"),
            format!("/api/v1/events/{event}/payload"),
            format!("/api/v1/events/{event}/rules/{}/attempts", re.id),
            format!("/api/v1/events/{event}/rules/{rule}/attempts"),
            format!("/api/v1/events/{event}/rules/{}/attempts/{attempt}", re.id),
            format!("/api/v1/workspaces/{ws}/events"),
        ] {
            error_body(get(path.clone()).await, 404).await;
        }
        for path in [
            format!("/api/v1/events/{event}/rules/{}/retry", re.id),
            format!("/api/v1/events/{event}/rules/{}/cancel", re.id),
            format!("/api/v1/events/{event}/cancel"),
            format!("/api/v1/rules/{rule}/test"),
            format!("/api/v1/workspaces/{ws}/replay"),
        ] {
            let resp = app.client.post(app.url(&path)).header("Authorization", &auth)
                .json(&json!({"status": "failed", "since": "2020-01-01T00:00:00Z"})).send().await.unwrap();
            error_body(resp, 404).await;
        }
        for path in ["/api/v1/events", "/api/v1/events?email=alex@northstar.io"] {
            let page: Value = get(path.to_owned()).await.json().await.unwrap();
            assert_eq!(page["count"], 0, "{path}: {page}");
        }
        // An attempt of another delivery is not found under this one.
        let other = app.send_for_id(&onboarding_event()).await;
        let other_re = app.wait_rule_event(other, DeliveryStatus::Completed, Duration::from_secs(10)).await;
        error_body(app.get(&format!("/api/v1/events/{other}/rules/{}/attempts/{attempt}", other_re.id)).await, 404).await;
        // Nothing changed for the owner.
        assert_eq!(app.rule_events(event).await[0].status, DeliveryStatus::Completed);
    }

    async fn pages_have_no_duplicates_or_gaps_while_events_arrive(app: TestApp) {
        let mut before = HashSet::new();
        for _ in 0..40 {
            before.insert(app.send_for_id(&onboarding_event()).await.0);
        }
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let client = app.client.clone();
            let url = app.url("/api/v1/events");
            let key = app.creds.publishable_key.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                // Bounded: at most 400 events, stopping when the reader is done.
                while sent < 400 && stop_rx.try_recv().is_err() {
                    let resp = client.post(&url).header("X-Meshes-Publishable-Key", &key)
                        .json(&onboarding_event()).send().await.unwrap();
                    assert_eq!(resp.status(), 201);
                    sent += 1;
                }
                sent
            })
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/events?limit=7&cursor={c}"),
                None => "/api/v1/events?limit=7".to_owned(),
            };
            let page: Value = app.get(&path).await.json().await.unwrap();
            for r in page["records"].as_array().unwrap() {
                seen.push(r["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop_tx.send(());
        let sent = writer.await.unwrap();
        assert!(sent > 0, "events arrived while paging");
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "no duplicates");
        assert!(before.is_subset(&unique), "every event that existed before the first page is listed");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, strictly");
    }
}
