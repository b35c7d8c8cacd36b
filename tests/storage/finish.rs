//! Finishing attempts: every disposition, the event roll-up, lost leases, throttling, batches,
//! parked deliveries and parking a connection.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use handoff::backend_tests;
use handoff::domain::{
    ClaimedDelivery, DeliveryStatus, Disposition, EventRecord, NewEvent, OutcomeCode, RuleChange,
    now,
};
use handoff::storage::testing::{TestDb, attempt_for};
use handoff::storage::{ConnectOptions, PageRequest, Store, connect};

use crate::support::queue::{claim_all, enqueue, record, route};

const ALL: PageRequest = PageRequest {
    limit: 100,
    before: None,
};

/// Finishes a claim with `disposition` as its owner `worker-a`; an error attempt unless completed.
async fn finish(db: &TestDb, claim: &ClaimedDelivery, disposition: Disposition) -> bool {
    let outcome = match disposition {
        Disposition::Completed => OutcomeCode::Delivered,
        _ => OutcomeCode::RejectedServerError,
    };
    db.store
        .finish_attempt(
            &attempt_for(claim, outcome),
            &disposition,
            "worker-a",
            now(),
        )
        .await
        .unwrap()
}

async fn event_now(db: &TestDb, event: &NewEvent) -> EventRecord {
    db.store
        .get_event(event.organization_id, event.id)
        .await
        .unwrap()
        .unwrap()
}

backend_tests! {
    async fn each_disposition_sets_the_delivery_and_rolls_its_single_event_up(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let retry_at = now() + TimeDelta::seconds(30);
        let cases = [
            (Disposition::Completed, DeliveryStatus::Completed, None, true, DeliveryStatus::Completed, (1, 0)),
            (Disposition::RetryAt { at: retry_at, throttled: false }, DeliveryStatus::Retrying, Some(retry_at), false, DeliveryStatus::Retrying, (0, 0)),
            (Disposition::Failed, DeliveryStatus::Failed, None, true, DeliveryStatus::Failed, (0, 1)),
            (Disposition::Parked, DeliveryStatus::Retrying, None, false, DeliveryStatus::Retrying, (0, 0)),
            (Disposition::Canceled, DeliveryStatus::Canceled, None, true, DeliveryStatus::Canceled, (0, 0)),
        ];
        for (disposition, status, next, is_final, event_status, counts) in cases {
            let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
            let claims = claim_all(&db, "worker-a").await;
            assert_eq!(claims.len(), 1);
            let attempt = attempt_for(&claims[0], OutcomeCode::RejectedServerError);
            let at = now();

            let applied = db.store.finish_attempt(&attempt, &disposition, "worker-a", at).await.unwrap();

            assert!(applied, "{disposition:?}");
            let stored = record(&db, org, event.id, claims[0].rule_event_id).await;
            assert_eq!(stored.status, status, "{disposition:?}");
            assert_eq!(stored.attempt_count, 1);
            assert_eq!(stored.throttled_count, 0);
            assert_eq!(stored.next_attempt_at, next, "{disposition:?}");
            assert_eq!(stored.completed_at, is_final.then_some(at), "{disposition:?}");
            let error = attempt.error.clone();
            let expected_error = if disposition == Disposition::Completed { None } else { error };
            assert_eq!(stored.last_error, expected_error, "{disposition:?}");
            let rolled = event_now(&db, &event).await;
            assert_eq!(rolled.status, event_status, "{disposition:?}");
            assert_eq!((rolled.completed_count, rolled.failed_count), counts, "{disposition:?}");
            assert_eq!(rolled.completed_at, is_final.then_some(at), "{disposition:?}");
            // The attempt is in history either way.
            let history = db.store.list_attempts(org, claims[0].rule_event_id, ALL).await.unwrap();
            assert_eq!(history, vec![attempt]);
        }
    }

    async fn an_event_with_three_deliveries_completes_only_when_all_have(db: TestDb) {
        let tenant = db.tenant().await;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let (second, third) = (db.rule(&connection).await, db.rule(&connection).await);
        let event = enqueue(&db, &tenant.workspace, &[&rule, &second, &third], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        assert_eq!(claims.len(), 3);

        assert!(finish(&db, &claims[0], Disposition::Completed).await);
        let rolled = event_now(&db, &event).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.completed_at), (DeliveryStatus::Processing, 1, None));
        assert!(finish(&db, &claims[1], Disposition::Completed).await);
        assert_eq!(event_now(&db, &event).await.status, DeliveryStatus::Processing);
        assert!(finish(&db, &claims[2], Disposition::Completed).await);

        let rolled = event_now(&db, &event).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.failed_count), (DeliveryStatus::Completed, 3, 0));
        assert!(rolled.completed_at.is_some());
    }

    async fn a_mixed_event_is_retrying_while_waiting_and_failed_once_all_are_final(db: TestDb) {
        let tenant = db.tenant().await;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let (second, third) = (db.rule(&connection).await, db.rule(&connection).await);
        let event = enqueue(&db, &tenant.workspace, &[&rule, &second, &third], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;

        assert!(finish(&db, &claims[0], Disposition::Completed).await);
        assert!(finish(&db, &claims[1], Disposition::Failed).await);
        assert_eq!(event_now(&db, &event).await.status, DeliveryStatus::Processing);
        let soon = now() - TimeDelta::milliseconds(1);
        assert!(finish(&db, &claims[2], Disposition::RetryAt { at: soon, throttled: false }).await);
        let rolled = event_now(&db, &event).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.failed_count), (DeliveryStatus::Retrying, 1, 1));
        assert_eq!(rolled.completed_at, None);

        let retried = claim_all(&db, "worker-a").await;
        assert_eq!(retried.len(), 1);
        assert_eq!(retried[0].attempt_count, 1);
        assert!(finish(&db, &retried[0], Disposition::Completed).await);

        let rolled = event_now(&db, &event).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.failed_count), (DeliveryStatus::Failed, 2, 1));
        assert!(rolled.completed_at.is_some());
    }

    async fn an_event_whose_deliveries_are_all_canceled_is_canceled_and_completed_with_canceled_ones_is_completed(db: TestDb) {
        let tenant = db.tenant().await;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let second = db.rule(&connection).await;
        let canceled = enqueue(&db, &tenant.workspace, &[&rule, &second], TimeDelta::seconds(2)).await;
        let mixed = enqueue(&db, &tenant.workspace, &[&rule, &second], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        assert_eq!(claims.len(), 4);
        let dispositions = [Disposition::Canceled, Disposition::Canceled, Disposition::Completed, Disposition::Canceled];
        let items: Vec<_> = claims
            .iter()
            .zip(dispositions)
            .map(|(claim, d)| (attempt_for(claim, OutcomeCode::Delivered), d))
            .collect();

        let applied = db.store.finish_attempts(&items, "worker-a", now()).await.unwrap();

        assert_eq!(applied, vec![true; 4]);
        assert_eq!(event_now(&db, &canceled).await.status, DeliveryStatus::Canceled);
        let rolled = event_now(&db, &mixed).await;
        assert_eq!((rolled.status, rolled.completed_count), (DeliveryStatus::Completed, 1));
    }

    async fn a_batch_rolls_up_every_event_it_touches(db: TestDb) {
        let tenant = db.tenant().await;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let (second, third) = (db.rule(&connection).await, db.rule(&connection).await);
        let three = enqueue(&db, &tenant.workspace, &[&rule, &second, &third], TimeDelta::seconds(2)).await;
        let one = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        assert_eq!(claims.len(), 4);
        let items: Vec<_> = claims
            .iter()
            .map(|claim| {
                let d = if claim.event_id == one.id { Disposition::Failed } else { Disposition::Completed };
                (attempt_for(claim, OutcomeCode::Delivered), d)
            })
            .collect();

        let applied = db.store.finish_attempts(&items, "worker-a", now()).await.unwrap();

        assert_eq!(applied, vec![true; 4]);
        let rolled = event_now(&db, &three).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.failed_count), (DeliveryStatus::Completed, 3, 0));
        let rolled = event_now(&db, &one).await;
        assert_eq!((rolled.status, rolled.completed_count, rolled.failed_count), (DeliveryStatus::Failed, 0, 1));
        assert!(db.store.finish_attempts(&[], "worker-a", now()).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn siblings_finished_concurrently_still_roll_their_event_up(db: TestDb) {
        let tenant = db.tenant().await;
        let mut rules = Vec::new();
        for _ in 0..4 {
            rules.push(route(&db, &tenant.workspace).await.1);
        }
        let rule_refs: Vec<_> = rules.iter().collect();
        let mut events = Vec::new();
        for _ in 0..30 {
            events.push(enqueue(&db, &tenant.workspace, &rule_refs, TimeDelta::seconds(1)).await);
        }
        let claims = claim_all(&db, "worker-a").await;
        assert_eq!(claims.len(), 120);
        // Each finisher takes one delivery of every event, so all four race on every event.
        let mut tasks = Vec::new();
        for rule in &rules {
            let store: Arc<dyn Store> = match db.store.backend() {
                "postgres" => connect(&db.url, ConnectOptions::default()).await.unwrap(),
                _ => db.store.clone(),
            };
            let mine: Vec<ClaimedDelivery> = claims
                .iter()
                .filter(|c| c.rule_id == rule.id)
                .cloned()
                .collect();
            tasks.push(tokio::spawn(async move {
                for chunk in mine.chunks(3) {
                    let items: Vec<_> = chunk
                        .iter()
                        .map(|c| (attempt_for(c, OutcomeCode::Delivered), Disposition::Completed))
                        .collect();
                    let applied = store.finish_attempts(&items, "worker-a", now()).await.unwrap();
                    assert!(applied.iter().all(|&a| a));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }

        for event in &events {
            let rolled = event_now(&db, event).await;
            assert_eq!((rolled.status, rolled.completed_count), (DeliveryStatus::Completed, 4));
            assert!(rolled.completed_at.is_some());
        }
    }

    async fn a_delivery_named_twice_in_a_batch_is_finished_by_the_first_item(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        let first = attempt_for(&claims[0], OutcomeCode::Delivered);
        let second = attempt_for(&claims[0], OutcomeCode::Delivered);
        let items = vec![(first, Disposition::Completed), (second, Disposition::Failed)];

        let applied = db.store.finish_attempts(&items, "worker-a", now()).await.unwrap();

        assert_eq!(applied, vec![true, false]);
        let stored = record(&db, tenant.organization.id, event.id, claims[0].rule_event_id).await;
        assert_eq!((stored.status, stored.attempt_count), (DeliveryStatus::Completed, 1));
        let history = db.store.list_attempts(tenant.organization.id, claims[0].rule_event_id, ALL).await.unwrap();
        assert_eq!(history.len(), 2);
    }

    async fn a_lost_lease_keeps_the_attempt_but_leaves_the_delivery_to_its_new_owner(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(10)).await;
        let early = now() - TimeDelta::seconds(5);
        let lost = db.store.claim_due("worker-a", early, early + TimeDelta::seconds(1), 10, 10).await.unwrap();
        let taken = claim_all(&db, "worker-b").await;
        assert_eq!(taken.len(), 1);
        let late = attempt_for(&lost[0], OutcomeCode::Delivered);

        let applied = db.store.finish_attempt(&late, &Disposition::Completed, "worker-a", now()).await.unwrap();

        assert!(!applied);
        let stored = record(&db, org, event.id, lost[0].rule_event_id).await;
        assert_eq!((stored.status, stored.attempt_count, stored.completed_at), (DeliveryStatus::Processing, 0, None));
        assert_eq!(event_now(&db, &event).await.status, DeliveryStatus::Processing);
        assert_eq!(db.store.list_attempts(org, lost[0].rule_event_id, ALL).await.unwrap(), vec![late]);
        // The new owner still finishes it.
        let mine = attempt_for(&taken[0], OutcomeCode::Delivered);
        assert!(db.store.finish_attempt(&mine, &Disposition::Completed, "worker-b", now()).await.unwrap());
        assert_eq!(event_now(&db, &event).await.status, DeliveryStatus::Completed);
        // A finished delivery cannot be finished again.
        let again = attempt_for(&taken[0], OutcomeCode::Delivered);
        assert!(!db.store.finish_attempt(&again, &Disposition::Failed, "worker-b", now()).await.unwrap());
        let stored = record(&db, org, event.id, taken[0].rule_event_id).await;
        assert_eq!((stored.status, stored.attempt_count), (DeliveryStatus::Completed, 1));
    }

    async fn throttled_attempts_count_as_attempts_and_apart(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        for throttled in [true, true, false] {
            let claims = claim_all(&db, "worker-a").await;
            assert_eq!(claims.len(), 1);
            let due = now() - TimeDelta::milliseconds(1);
            assert!(finish(&db, &claims[0], Disposition::RetryAt { at: due, throttled }).await);
        }

        let claims = claim_all(&db, "worker-a").await;

        assert_eq!((claims[0].attempt_count, claims[0].throttled_count), (3, 2));
        let stored = record(&db, tenant.organization.id, event.id, claims[0].rule_event_id).await;
        assert_eq!((stored.attempt_count, stored.throttled_count), (3, 2));
    }

    async fn resuming_a_connection_makes_only_its_parked_deliveries_due(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (rejected, rejected_rule) = route(&db, &tenant.workspace).await;
        let (other, other_rule) = route(&db, &tenant.workspace).await;
        let parked = enqueue(&db, &tenant.workspace, &[&rejected_rule, &rejected_rule], TimeDelta::seconds(2)).await;
        let elsewhere = enqueue(&db, &tenant.workspace, &[&other_rule], TimeDelta::seconds(1)).await;
        for claim in claim_all(&db, "worker-a").await {
            assert!(finish(&db, &claim, Disposition::Parked).await);
        }
        assert_eq!(claim_all(&db, "worker-a").await, vec![]);
        let stranger = db.tenant().await;
        assert_eq!(db.store.resume_parked(stranger.organization.id, rejected.id, now()).await.unwrap(), 0);

        let at = now();
        let resumed = db.store.resume_parked(org, rejected.id, at).await.unwrap();

        assert_eq!(resumed, 2);
        let stored = record(&db, org, parked.id, parked.rule_events[0].id).await;
        assert_eq!((stored.status, stored.next_attempt_at), (DeliveryStatus::Retrying, Some(at)));
        let claims = claim_all(&db, "worker-a").await;
        assert_eq!(claims.len(), 2);
        assert!(claims.iter().all(|c| c.connection_id == rejected.id && c.attempt_count == 1));
        let still = record(&db, org, elsewhere.id, elsewhere.rule_events[0].id).await;
        assert_eq!(still.next_attempt_at, None);
        assert_eq!(db.store.resume_parked(org, other.id, now()).await.unwrap(), 1);
    }

    async fn parking_a_connection_deactivates_it_once_and_announces_it(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, _) = route(&db, &tenant.workspace).await;
        let mut feed = db.store.rule_changes().await.unwrap();
        let at = now();

        assert!(db.store.park_connection(connection.id, "authentication_invalid", at).await.unwrap());

        let stored = db.store.get_connection(org, connection.id).await.unwrap().unwrap();
        assert!(!stored.active);
        assert_eq!(stored.inactive_reason.as_deref(), Some("authentication_invalid"));
        assert_eq!(stored.updated_at, at);
        let announced = tokio::time::timeout(Duration::from_secs(1), feed.recv()).await.unwrap();
        assert_eq!(announced, Some(RuleChange::Workspace(tenant.workspace.id)));
        // Already parked, or unknown: nothing changes and nothing is announced.
        assert!(!db.store.park_connection(connection.id, "other", now()).await.unwrap());
        assert!(!db.store.park_connection(handoff::domain::ConnectionId::new_v7(), "x", now()).await.unwrap());
        let stored = db.store.get_connection(org, connection.id).await.unwrap().unwrap();
        assert_eq!(stored.inactive_reason.as_deref(), Some("authentication_invalid"));
        assert!(tokio::time::timeout(Duration::from_millis(300), feed.recv()).await.is_err());
    }
}
