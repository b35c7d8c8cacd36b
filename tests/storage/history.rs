//! Delivery history reads (rule events, attempts) and their tenant scoping; worker heartbeats;
//! queue statistics.

use chrono::TimeDelta;
use handoff::backend_tests;
use handoff::domain::{
    AttemptId, CallRecord, DeliveryStatus, Disposition, EventId, OutcomeCode, RuleEventId, now,
};
use handoff::storage::testing::{TestDb, attempt_for};
use handoff::storage::{PageRequest, QueueStats};

use crate::support::queue::{claim_all, enqueue, lease, route};

const ALL: PageRequest = PageRequest {
    limit: 100,
    before: None,
};

backend_tests! {
    async fn rule_events_are_listed_with_their_event_and_only_to_their_organization(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let second = db.rule(&connection).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule, &second], TimeDelta::seconds(1)).await;

        let listed = db.store.list_rule_events(org, event.id).await.unwrap();

        assert_eq!(listed.len(), 2);
        for (record, planned) in listed.iter().zip(&event.rule_events) {
            assert_eq!(record.id, planned.id);
            assert_eq!((record.organization_id, record.workspace_id), (org, tenant.workspace.id));
            assert_eq!((record.event_id, record.rule_id, record.connection_id), (event.id, planned.rule_id, connection.id));
            assert_eq!(record.integration_type, "activecampaign");
            assert_eq!(record.status, DeliveryStatus::Pending);
            assert_eq!((record.attempt_count, record.throttled_count), (0, 0));
            assert_eq!(record.next_attempt_at, Some(event.created_at));
            assert_eq!((record.started_at, record.completed_at, record.last_error.as_deref()), (None, None, None));
            assert_eq!((record.created_by.as_str(), record.created_at), ("publishable_key", event.created_at));
            assert_eq!((record.event.as_str(), record.resource.as_str()), ("page.completed", "onboarding_sequence"));
            assert_eq!(record.resource_id.as_deref(), Some("workspace-setup"));
        }
        let other = db.tenant().await;
        assert_eq!(db.store.list_rule_events(other.organization.id, event.id).await.unwrap(), vec![]);
        assert_eq!(db.store.list_rule_events(org, EventId::new_v7()).await.unwrap(), vec![]);
    }

    async fn attempts_read_back_equal_newest_first_in_pages(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let mut made = Vec::new();
        for n in 0..3 {
            let claim = claim_all(&db, "worker-a").await.remove(0);
            let mut attempt = attempt_for(&claim, OutcomeCode::RateLimited);
            attempt.http_status = if n == 1 { None } else { Some(429) };
            attempt.error = (n != 1).then(|| "throttled \u{2014} \"Retry-After: 2\"".into());
            attempt.is_test = n == 2;
            attempt.calls.push(CallRecord {
                method: "GET".into(),
                path: "/api/3/tags?search=onboarding".into(),
                status: None,
                duration_ms: u64::from(u32::MAX),
                response_excerpt: "x".repeat(2048),
            });
            let due = now() - TimeDelta::milliseconds(1);
            let disposition = Disposition::RetryAt { at: due, throttled: true };
            assert!(db.store.finish_attempt(&attempt, &disposition, "worker-a", now()).await.unwrap());
            made.push(attempt);
        }
        let rule_event = made[0].rule_event_id;
        assert_eq!(made.iter().map(|a| a.attempt_number).collect::<Vec<_>>(), vec![1, 2, 3]);
        made.reverse();

        assert_eq!(db.store.list_attempts(org, rule_event, ALL).await.unwrap(), made);
        let first = db.store.list_attempts(org, rule_event, PageRequest { limit: 2, before: None }).await.unwrap();
        assert_eq!(first, made[..2]);
        let rest = PageRequest { limit: 2, before: Some(first[1].id.0) };
        assert_eq!(db.store.list_attempts(org, rule_event, rest).await.unwrap(), made[2..]);
        for attempt in &made {
            assert_eq!(db.store.get_attempt(org, attempt.id).await.unwrap().as_ref(), Some(attempt));
        }
    }

    async fn another_organization_sees_no_attempts(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let claim = claim_all(&db, "worker-a").await.remove(0);
        let attempt = attempt_for(&claim, OutcomeCode::Delivered);
        assert!(db.store.finish_attempt(&attempt, &Disposition::Completed, "worker-a", now()).await.unwrap());
        let other = db.tenant().await;

        assert_eq!(db.store.list_attempts(other.organization.id, claim.rule_event_id, ALL).await.unwrap(), vec![]);
        assert_eq!(db.store.get_attempt(other.organization.id, attempt.id).await.unwrap(), None);
        let org = tenant.organization.id;
        assert_eq!(db.store.get_attempt(org, AttemptId::new_v7()).await.unwrap(), None);
        assert_eq!(db.store.list_attempts(org, RuleEventId::new_v7(), ALL).await.unwrap(), vec![]);
    }

    async fn live_nodes_are_those_that_beat_recently_sorted(db: TestDb) {
        let at = now();
        db.store.heartbeat("node-b", at).await.unwrap();
        db.store.heartbeat("node-a", at - TimeDelta::seconds(1)).await.unwrap();
        db.store.heartbeat("node-c", at - TimeDelta::seconds(30)).await.unwrap();
        let since = at - TimeDelta::seconds(10);

        assert_eq!(db.store.live_nodes(since).await.unwrap(), ["node-a", "node-b"]);

        // A beat revives; removal forgets (twice is fine).
        db.store.heartbeat("node-c", at).await.unwrap();
        assert_eq!(db.store.live_nodes(since).await.unwrap(), ["node-a", "node-b", "node-c"]);
        db.store.remove_node("node-b").await.unwrap();
        db.store.remove_node("node-b").await.unwrap();
        assert_eq!(db.store.live_nodes(since).await.unwrap(), ["node-a", "node-c"]);
        assert_eq!(db.store.live_nodes(at).await.unwrap(), ["node-c"]);
    }

    async fn queue_stats_count_due_deliveries_and_the_oldest_age(db: TestDb) {
        let empty = db.store.queue_stats(now()).await.unwrap();
        assert_eq!(empty, QueueStats { due: 0, oldest_due_age_seconds: 0.0 });
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let oldest = enqueue(&db, &tenant.workspace, &[&rule, &rule], TimeDelta::seconds(90)).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(30)).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(-60)).await;
        let at = now();

        let stats = db.store.queue_stats(at).await.unwrap();

        assert_eq!(stats.due, 3);
        let expected = (at - oldest.created_at).num_microseconds().unwrap() as f64 / 1e6;
        assert!((stats.oldest_due_age_seconds - expected).abs() < 1e-6, "{stats:?} vs {expected}");
        // Claimed ones are not due until their lease expires.
        let claims = db.store.claim_due("worker-a", at, lease(at), 10, 10).await.unwrap();
        assert_eq!(claims.len(), 3);
        assert_eq!(db.store.queue_stats(at).await.unwrap().due, 0);
        assert_eq!(db.store.queue_stats(lease(at) + TimeDelta::seconds(1)).await.unwrap().due, 4);
    }
}
