//! `GET /metrics`: parseable Prometheus text whose counters move by exactly what ingest and delivery did.

use std::collections::HashMap;
use std::time::Duration;

use handoff::domain::DeliveryStatus;
use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{TestApp, eventually, onboarding_event, sandbox_account};

const SOON: Duration = Duration::from_secs(10);

/// One scrape, parsed into `series → value`.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("{series} is not exposed"))
    }

    fn delta(&self, before: &Scrape, series: &str) -> f64 {
        self.get(series) - before.get(series)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every line is a `# HELP`/`# TYPE` comment or `name{k="v",…} value`; no series appears twice.
fn parse(text: &str) -> Scrape {
    let mut series = HashMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let kind = words.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "comment: {line}");
            assert!(valid_name(words.next().unwrap_or("")), "comment: {line}");
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = match key.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(valid_name(k), "label name: {line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
                name
            }
            None => key,
        };
        assert!(
            valid_name(name) && name.starts_with("handoff_"),
            "name: {line}"
        );
        assert!(
            series.insert(key.to_owned(), value).is_none(),
            "twice: {key}"
        );
    }
    Scrape(series)
}

async fn scrape(app: &TestApp) -> Scrape {
    scrape_at(&app.client, &app.url("/metrics")).await
}

async fn scrape_at(client: &reqwest::Client, url: &str) -> Scrape {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&resp.text().await.unwrap())
}

async fn send_with_key(app: &TestApp, key: &str, body: &Value) -> u16 {
    app.client
        .post(app.url("/api/v1/events"))
        .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const ACCEPTED: &str = r#"handoff_ingest_events_total{result="accepted"}"#;
const REPLAYED: &str = r#"handoff_ingest_events_total{result="replayed"}"#;
const REJECTED: &str = r#"handoff_ingest_events_total{result="rejected"}"#;
const DELIVERED: &str =
    r#"handoff_delivery_attempts_total{outcome="delivered",integration="activecampaign"}"#;
const LATENCY_COUNT: &str = "handoff_delivery_latency_seconds_count";

app_tests! {
    async fn ingest_counters_move_by_exactly_what_was_sent(app: TestApp) {
        let before = scrape(&app).await;
        assert_eq!(app.send_event(&onboarding_event()).await.status(), 201);
        assert_eq!(send_with_key(&app, "step-3", &onboarding_event()).await, 201);
        assert_eq!(send_with_key(&app, "step-3", &onboarding_event()).await, 201, "a replay");
        assert_eq!(app.send_event(&json!({"event": "page.completed", "payload": {}})).await.status(), 400);
        let unauthenticated = app.client.post(app.url("/api/v1/events")).json(&onboarding_event()).send().await.unwrap();
        assert_eq!(unauthenticated.status(), 401);
        let bulk = app.client.post(app.url("/api/v1/events/bulk"))
            .header("X-Meshes-Publishable-Key", &app.creds.publishable_key)
            .json(&json!([onboarding_event(), {"event": "", "payload": {"a": 1}}, onboarding_event()]))
            .send().await.unwrap();
        assert_eq!(bulk.status(), 207);

        let after = scrape(&app).await;
        assert_eq!(after.delta(&before, ACCEPTED), 4.0, "single, keyed, and two bulk items");
        assert_eq!(after.delta(&before, REPLAYED), 1.0);
        assert_eq!(after.delta(&before, REJECTED), 3.0, "invalid, unauthenticated, one bulk item");
        let requests = |endpoint: &str, status: &str| {
            after.delta(&before, &format!(r#"handoff_ingest_requests_total{{endpoint="{endpoint}",status="{status}"}}"#))
        };
        assert_eq!(requests("events", "201"), 3.0);
        assert_eq!(requests("events", "400"), 1.0);
        assert_eq!(requests("events", "401"), 1.0);
        assert_eq!(requests("bulk", "207"), 1.0);
        assert_eq!(requests("bulk", "201"), 0.0);
        let count = "handoff_ingest_request_duration_seconds_count";
        assert_eq!(after.delta(&before, count), 6.0);
        assert_eq!(after.get(count), after.get(r#"handoff_ingest_request_duration_seconds_bucket{le="+Inf"}"#));
        assert!(after.delta(&before, "handoff_ingest_request_duration_seconds_sum") > 0.0);
        // Scrapes and other routes are not ingest requests, nor is the history list on the same path.
        assert_eq!(app.get("/api/v1/events").await.status(), 200);
        assert_eq!(scrape(&app).await.get(count), after.get(count));
    }

    async fn a_completed_delivery_counts_its_attempt_and_its_latency(app: TestApp) {
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        let before = scrape(&app).await;
        assert_eq!(before.get(DELIVERED), 0.0);
        // Three deliveries make 4 + 2 + 2 calls: more than the account's 5 per second, so some wait.
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(app.send_for_id(&onboarding_event()).await);
        }
        for event in events {
            app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        }
        // The counters move just after the attempts' commit, which the waits above may beat.
        let after = eventually(SOON, "the delivered attempts in /metrics", || async {
            let s = scrape(&app).await;
            (s.get(LATENCY_COUNT) >= before.get(LATENCY_COUNT) + 3.0).then_some(s)
        }).await;
        assert_eq!(after.delta(&before, DELIVERED), 3.0);
        assert_eq!(after.delta(&before, LATENCY_COUNT), 3.0);
        let sum = after.delta(&before, "handoff_delivery_latency_seconds_sum");
        assert!(sum > 0.0 && sum < 3.0 * SOON.as_secs_f64(), "latency {sum}");
        assert!(after.delta(&before, "handoff_rate_limit_waits_total") >= 1.0);
        assert!(after.delta(&before, "handoff_rate_limit_wait_seconds_total") > 0.0);
        assert_eq!(after.get(LATENCY_COUNT), after.get(r#"handoff_delivery_latency_seconds_bucket{le="+Inf"}"#));
        let failed = r#"handoff_delivery_attempts_total{outcome="rejected_server_error",integration="activecampaign"}"#;
        assert_eq!(after.get(failed), 0.0);
        assert_eq!(after.get("handoff_queue_due"), 0.0);
    }
}

/// Without workers the delivery stays due, and the queue gauges say so.
mod queue_gauges_show_deliveries_waiting_for_a_worker {
    use super::*;
    use handoff::storage::testing::TestDb;

    async fn body(db: TestDb) {
        let app = TestApp::spawn_roles(db, &[], false).await;
        let (_sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        let before = scrape(&app).await;
        assert_eq!(before.get("handoff_queue_due"), 0.0);
        assert_eq!(before.get("handoff_queue_oldest_due_age_seconds"), 0.0);
        app.send_for_id(&onboarding_event()).await;
        app.send_for_id(&onboarding_event()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = scrape(&app).await;
        assert_eq!(after.get("handoff_queue_due"), 2.0);
        let age = after.get("handoff_queue_oldest_due_age_seconds");
        assert!(age > 0.0 && age < SOON.as_secs_f64(), "age {age}");
        assert_eq!(after.delta(&before, DELIVERED), 0.0);

        // A worker-only node delivers them and shows it on its own operations listener.
        let worker = app.spawn_worker_node_with_ops().await;
        let base = format!("http://{worker}");
        let delivered = crate::support::eventually(SOON, "the worker's attempts", || async {
            let s = scrape_at(&app.client, &format!("{base}/metrics")).await;
            (s.get(DELIVERED) == 2.0).then_some(s)
        })
        .await;
        assert_eq!(delivered.get(LATENCY_COUNT), 2.0);
        assert_eq!(delivered.get("handoff_queue_due"), 0.0);
        for path in ["/healthz", "/readyz"] {
            assert_eq!(
                app.client
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200,
                "{path}"
            );
        }
        let unknown = app
            .client
            .get(format!("{base}/api/v1/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404, "the worker serves no API");
        // The API node recorded no attempt of its own.
        assert_eq!(scrape(&app).await.delta(&before, DELIVERED), 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        body(TestDb::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = TestDb::postgres().await else {
            eprintln!("skipped: no TEST_DATABASE_URL");
            return;
        };
        body(db).await;
    }
}
