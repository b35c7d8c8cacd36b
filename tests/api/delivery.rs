//! Delivery end to end: accepted events reach the (sandbox) account; each outcome class is recorded and
//! handled as DESIGN.md says; rate limits hold as the account sees them; one bad connection does not delay others.

use std::time::Duration;

use handoff::domain::{DeliveryStatus, OutcomeCode};
use handoff::sandbox::{Fault, FaultBody, FaultKind};
use serde_json::{Value, json};

use crate::app_tests;
use crate::support::{eventually, onboarding_event, sandbox_account};

const SOON: Duration = Duration::from_secs(10);

fn fault(status: u16, body: FaultBody, retry_after: Option<u64>) -> Fault {
    Fault {
        kind: FaultKind::Status {
            status,
            body,
            retry_after,
        },
        count: 1,
    }
}

app_tests! {
    async fn an_accepted_event_gets_its_tag_and_its_history(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(sandbox.contact_tags_by_email(&account.name, "alex@northstar.io"), ["onboarding-step-3-done"]);
        assert_eq!(re.attempt_count, 1);
        assert!(re.completed_at.is_some());
        let attempts = app.attempts(re.id).await;
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert_eq!(a.outcome_code, OutcomeCode::Delivered);
        let paths: Vec<_> = a.calls.iter().map(|c| format!("{} {}", c.method, c.path)).collect();
        assert_eq!(paths.len(), 4, "cold path: sync, search, create, attach: {paths:?}");
        assert!(paths[0].ends_with("/api/3/contact/sync"), "{paths:?}");
        assert!(paths[3].ends_with("/api/3/contactTags"), "{paths:?}");
        assert!(a.calls.iter().all(|c| !c.response_excerpt.contains(&account.token)));
        let e = app.store.get_event(app.creds.organization_id, event).await.unwrap().unwrap();
        assert_eq!(e.status, DeliveryStatus::Completed);
        assert_eq!(e.completed_count, 1);

        // Warm path: the tag id is cached, two calls.
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(app.attempts(re.id).await[0].calls.len(), 2);
    }

    async fn a_rejected_key_parks_deliveries_until_the_connection_is_fixed(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.set_token(&account.name, "rotated-token");
        let event = app.send_for_id(&onboarding_event()).await;
        let parked = eventually(SOON, "a parked delivery", || async {
            app.rule_events(event).await.into_iter().find(|r| r.status == DeliveryStatus::Retrying && r.next_attempt_at.is_none() && r.attempt_count >= 1)
        }).await;
        assert!(parked.last_error.is_some());
        assert_eq!(app.attempts(parked.id).await[0].outcome_code, OutcomeCode::AuthFailed);
        let c: Value = app.get(&format!("/api/v1/connections/{conn}")).await.json().await.unwrap();
        assert_eq!(c["active"], false);
        assert_eq!(c["inactive_reason"], "authentication_invalid");
        // Nothing more is tried while parked.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.rule_events(event).await[0].attempt_count, parked.attempt_count);

        let resp = app.put(&format!("/api/v1/connections/{conn}"), &json!({"metadata": {"api_url": account.api_url, "api_key": "rotated-token"}})).await;
        assert_eq!(resp.status(), 200);
        app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(sandbox.contact_tags_by_email(&account.name, "alex@northstar.io"), ["onboarding-step-3-done"]);
    }

    async fn throttling_waits_retry_after_without_spending_the_budget(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, fault(429, FaultBody::Json, Some(1)));
        sandbox.inject_fault(&account.name, fault(503, FaultBody::Json, Some(1)));
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Completed, SOON).await;
        assert_eq!(re.attempt_count, 3);
        assert_eq!(re.throttled_count, 2);
        let codes: Vec<_> = app.attempts(re.id).await.iter().map(|a| a.outcome_code).collect();
        assert_eq!(codes, [OutcomeCode::RateLimited, OutcomeCode::RateLimited, OutcomeCode::Delivered]);
    }

    async fn server_errors_html_pages_and_dropped_connections_are_retried(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, fault(503, FaultBody::Json, None));
        sandbox.inject_fault(&account.name, fault(504, FaultBody::Html, None));
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Drop, count: 1 });
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Completed, Duration::from_secs(15)).await;
        let attempts = app.attempts(re.id).await;
        let codes: Vec<_> = attempts.iter().map(|a| a.outcome_code).collect();
        assert_eq!(codes, [OutcomeCode::RejectedServerError, OutcomeCode::RejectedServerError, OutcomeCode::NetworkError, OutcomeCode::Delivered]);
        assert_eq!(attempts[1].http_status, Some(504));
        assert!(attempts[1].calls[0].response_excerpt.contains("<title>"), "the HTML page is kept as an excerpt");
        assert_eq!(re.throttled_count, 0);
    }

    async fn a_client_error_fails_at_once_and_the_retry_budget_ends_in_failed(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        sandbox.inject_fault(&account.name, fault(422, FaultBody::Json, None));
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Failed, SOON).await;
        assert_eq!(re.attempt_count, 1);
        assert_eq!(app.attempts(re.id).await[0].outcome_code, OutcomeCode::RejectedClientError);
        let e = app.store.get_event(app.creds.organization_id, event).await.unwrap().unwrap();
        assert_eq!(e.status, DeliveryStatus::Failed);
        assert_eq!(e.failed_count, 1);

        // Four server errors: the test schedule has three retries, so the fourth failure is final.
        sandbox.inject_fault(&account.name, Fault { kind: FaultKind::Status { status: 500, body: FaultBody::Json, retry_after: None }, count: 4 });
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Failed, Duration::from_secs(15)).await;
        assert_eq!(re.attempt_count, 4);
    }

    async fn a_template_naming_a_missing_field_is_a_mapping_error(app: TestApp) {
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({"metadata": {"action": "add_tag", "tag": "plan-{{payload.plan}}"}})).await;
        let event = app.send_for_id(&onboarding_event()).await;
        let re = app.wait_rule_event(event, DeliveryStatus::Failed, SOON).await;
        let a = &app.attempts(re.id).await[0];
        assert_eq!(a.outcome_code, OutcomeCode::MappingError);
        assert!(a.error.as_deref().unwrap().contains("payload.plan"), "{:?}", a.error);
        assert!(a.calls.is_empty());
        assert!(sandbox.request_log(&account.name).iter().all(|r| !r.path.contains("contact")));
    }

    async fn deliveries_stay_within_the_accounts_rate_limit_as_it_sees_it(app: TestApp) {
        let sandbox = handoff::sandbox::Sandbox::start(handoff::sandbox::SandboxConfig::default()).await.unwrap();
        let account = sandbox.create_account(handoff::sandbox::AccountOptions::default().rate_limit(5));
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        // The connection check counted against the account too; let it leave the window.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        sandbox.clear_request_log(&account.name);
        let mut events = Vec::new();
        for i in 0..12 {
            let mut e = onboarding_event();
            e["payload"]["email"] = json!(format!("user{i}@northstar.io"));
            events.push(app.send_for_id(&e).await);
        }
        for e in events {
            app.wait_rule_event(e, DeliveryStatus::Completed, Duration::from_secs(20)).await;
        }
        let log = sandbox.request_log(&account.name);
        assert!(log.len() >= 25, "{} calls", log.len());
        assert!(log.iter().all(|r| r.status != Some(429)), "the account never had to throttle us");
        let mut times: Vec<_> = log.iter().filter(|r| r.status != Some(429)).map(|r| r.at).collect();
        times.sort();
        let most = (0..times.len())
            .map(|i| times[i..].iter().take_while(|t| **t - times[i] < chrono::TimeDelta::seconds(1)).count())
            .max()
            .unwrap();
        assert!(most <= 5, "{most} calls in one second");
    }

}

mod postgres_only {
    use super::*;
    use crate::support::TestApp;
    use handoff::storage::testing::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_on_another_node_is_woken_by_notify_not_by_its_poll() {
        let Some(db) = TestDb::postgres().await else {
            eprintln!("skipped: no TEST_DATABASE_URL");
            return;
        };
        // A 20 s poll: only LISTEN/NOTIFY can make the delivery quick.
        let app = TestApp::spawn_roles(
            db,
            &[("HANDOFF__DELIVERY__POLL_INTERVAL_MS", "20000")],
            false,
        )
        .await;
        let (sandbox, account) = sandbox_account().await;
        let conn = app.connection_for(&account).await;
        app.rule_for(&conn, json!({})).await;
        app.spawn_worker_node().await;
        // Let the worker take its first (empty) claim and start waiting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let event = app.send_for_id(&onboarding_event()).await;
        app.wait_rule_event(event, DeliveryStatus::Completed, Duration::from_secs(5))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "woken late: {:?}",
            started.elapsed()
        );
        assert_eq!(
            sandbox.contact_tags_by_email(&account.name, "alex@northstar.io"),
            ["onboarding-step-3-done"]
        );
    }
}

/// A pool of 8: three bad connections may take at most their caps (2 each at 5 requests/s), which
/// leaves room for the healthy one; without per-connection caps their 45 deliveries would fill it.
mod isolation {
    use super::*;
    use crate::support::TestApp;
    use handoff::storage::testing::TestDb;

    // The real retry schedule: the bad deliveries are not due again while the test runs.
    const SMALL_POOL: &[(&str, &str)] = &[
        ("HANDOFF__DELIVERY__CONCURRENCY", "8"),
        ("HANDOFF__RETRY__SCHEDULE_SECONDS", "[5, 30, 120]"),
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_down_and_throttled_connections_do_not_delay_the_others_sqlite() {
        isolation_body(TestApp::spawn(TestDb::sqlite().await, SMALL_POOL).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_down_and_throttled_connections_do_not_delay_the_others_postgres() {
        let Some(db) = TestDb::postgres().await else {
            eprintln!("skipped: no TEST_DATABASE_URL");
            return;
        };
        isolation_body(TestApp::spawn(db, SMALL_POOL).await).await;
    }

    async fn isolation_body(app: TestApp) {
        let (sandbox, fast) = sandbox_account().await;
        let bad: Vec<_> = (0..3)
            .map(|_| sandbox.create_account(handoff::sandbox::AccountOptions::default()))
            .collect();
        let fast_conn = app.connection_for(&fast).await;
        app.rule_for(&fast_conn, json!({"resource_id": "fast"}))
            .await;
        // Slow: 5 s per call. Down: every connection dropped. Throttled: 429 with Retry-After.
        let faults = [
            FaultKind::Latency(Duration::from_secs(5)),
            FaultKind::Drop,
            FaultKind::Status {
                status: 429,
                body: FaultBody::Json,
                retry_after: Some(1),
            },
        ];
        let mut bad_events = Vec::new();
        for (i, (account, kind)) in bad.iter().zip(faults).enumerate() {
            let conn = app.connection_for(account).await;
            app.rule_for(&conn, json!({"resource_id": format!("bad{i}")}))
                .await;
            sandbox.inject_fault(&account.name, Fault { kind, count: 1000 });
            for n in 0..15 {
                let mut e = onboarding_event();
                e["resource_id"] = json!(format!("bad{i}"));
                e["payload"]["email"] = json!(format!("bad{i}-{n}@northstar.io"));
                bad_events.push(app.send_for_id(&e).await);
            }
        }
        // Let the bad deliveries take their slots first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut e = onboarding_event();
        e["resource_id"] = json!("fast");
        let started = std::time::Instant::now();
        let fast_event = app.send_for_id(&e).await;
        app.wait_rule_event(fast_event, DeliveryStatus::Completed, SOON)
            .await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "the healthy connection waited behind the bad ones: {took:?}"
        );
        for e in bad_events {
            assert_ne!(
                app.rule_events(e).await[0].status,
                DeliveryStatus::Completed
            );
        }
    }
}
