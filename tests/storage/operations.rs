//! What support reads and does: event lists and their filters, payloads, manual retry and cancel
//! with their refusals and roll-ups, replay's window, limit and exclusions, and Send Test Event's
//! stored record — each scoped to the organization.

use chrono::TimeDelta;
use handoff::backend_tests;
use handoff::domain::{
    AttemptId, ClaimedDelivery, DeliveryStatus, Disposition, EventId, NewRuleEvent, OutcomeCode,
    RuleEventId, now,
};
use handoff::storage::PageRequest;
use handoff::storage::operations::{
    EventFilter, Manual, ReplayFilter, TEST_CREATED_BY, TestDelivery,
};
use handoff::storage::testing::{TestDb, attempt_for, event_through};

use crate::support::queue::{claim_all, enqueue, record, route};

const ALL: PageRequest = PageRequest {
    limit: 100,
    before: None,
};

async fn finish(db: &TestDb, claim: &ClaimedDelivery, disposition: Disposition) {
    let outcome = match disposition {
        Disposition::Completed => OutcomeCode::Delivered,
        _ => OutcomeCode::RejectedClientError,
    };
    let applied = db
        .store
        .finish_attempt(
            &attempt_for(claim, outcome),
            &disposition,
            "worker-a",
            now(),
        )
        .await
        .unwrap();
    assert!(applied);
}

fn done(outcome: Manual) -> handoff::storage::RuleEventRecord {
    match outcome {
        Manual::Done(record) => *record,
        other => panic!("expected Done, got {other:?}"),
    }
}

backend_tests! {
    async fn events_are_listed_newest_first_by_every_filter_and_only_to_their_organization(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let at = now();
        let second_ws = handoff::domain::Workspace {
            id: handoff::domain::WorkspaceId::new_v7(),
            organization_id: org,
            name: "Staging".into(),
            description: None,
            created_at: at,
            updated_at: at,
        };
        db.store.create_workspace(&second_ws, &handoff::storage::testing::publishable_key_for(&second_ws)).await.unwrap();
        let mut made = Vec::new();
        for (n, ws) in [&tenant.workspace, &second_ws, &tenant.workspace].into_iter().enumerate() {
            let mut e = event_through(ws, &[]);
            e.contact_email = Some(format!("user{n}@northstar.io"));
            if n == 1 {
                e.event = "signup.completed".into();
                e.resource = "global".into();
                e.resource_id = None;
            }
            db.store.insert_events(std::slice::from_ref(&e)).await.unwrap();
            made.push(e.id);
        }
        let ids = |rows: Vec<handoff::domain::EventRecord>| rows.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let list = |filter: EventFilter| {
            let store = db.store.clone();
            async move { ids(store.list_events(org, &filter, ALL).await.unwrap()) }
        };
        assert_eq!(list(EventFilter::default()).await, vec![made[2], made[1], made[0]]);
        assert_eq!(list(EventFilter { workspace: Some(tenant.workspace.id), ..Default::default() }).await, vec![made[2], made[0]]);
        assert_eq!(list(EventFilter { event: Some("signup.completed".into()), ..Default::default() }).await, vec![made[1]]);
        assert_eq!(list(EventFilter { resource: Some("onboarding_sequence".into()), ..Default::default() }).await, vec![made[2], made[0]]);
        assert_eq!(list(EventFilter { resource_id: Some("workspace-setup".into()), ..Default::default() }).await, vec![made[2], made[0]]);
        assert_eq!(list(EventFilter { status: Some(DeliveryStatus::Completed), ..Default::default() }).await.len(), 3);
        assert_eq!(list(EventFilter { status: Some(DeliveryStatus::Failed), ..Default::default() }).await, vec![]);
        assert_eq!(list(EventFilter { contact_email: Some("user1@northstar.io".into()), ..Default::default() }).await, vec![made[1]]);
        assert_eq!(list(EventFilter { workspace: Some(tenant.workspace.id), contact_email: Some("user1@northstar.io".into()), ..Default::default() }).await, vec![]);
        let page = db.store.list_events(org, &EventFilter::default(), PageRequest { limit: 2, before: Some(made[2].0) }).await.unwrap();
        assert_eq!(ids(page), vec![made[1], made[0]]);

        let rival = db.tenant().await;
        assert_eq!(db.store.list_events(rival.organization.id, &EventFilter::default(), ALL).await.unwrap(), vec![]);
        let foreign = EventFilter { workspace: Some(tenant.workspace.id), ..Default::default() };
        assert_eq!(db.store.list_events(rival.organization.id, &foreign, ALL).await.unwrap(), vec![]);
    }

    async fn a_payload_is_read_back_only_by_its_organization(db: TestDb) {
        let tenant = db.tenant().await;
        let event = event_through(&tenant.workspace, &[]);
        db.store.insert_events(std::slice::from_ref(&event)).await.unwrap();
        let org = tenant.organization.id;
        assert_eq!(db.store.event_payload(org, event.id).await.unwrap(), Some(Some(event.payload.clone())));
        let rival = db.tenant().await;
        assert_eq!(db.store.event_payload(rival.organization.id, event.id).await.unwrap(), None);
        assert_eq!(db.store.event_payload(org, EventId::new_v7()).await.unwrap(), None);
    }

    async fn a_failed_delivery_retried_by_hand_is_due_now_and_its_event_reopens(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let claim = claim_all(&db, "worker-a").await.remove(0);
        finish(&db, &claim, Disposition::Failed).await;
        assert_eq!(db.store.get_event(org, event.id).await.unwrap().unwrap().status, DeliveryStatus::Failed);

        let at = now();
        let retried = done(db.store.retry_rule_event(org, event.id, rule.id.0, at).await.unwrap());
        assert_eq!(retried.id, claim.rule_event_id);
        assert_eq!((retried.status, retried.next_attempt_at, retried.completed_at), (DeliveryStatus::Retrying, Some(at), None));
        assert_eq!(retried.attempt_count, 1, "history and counts stay");
        let e = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!((e.status, e.failed_count, e.completed_at), (DeliveryStatus::Retrying, 0, None));
        // Now due: claimed and completed like any other delivery.
        let again = claim_all(&db, "worker-a").await;
        assert_eq!(again.len(), 1);
        finish(&db, &again[0], Disposition::Completed).await;
        assert_eq!(db.store.get_event(org, event.id).await.unwrap().unwrap().status, DeliveryStatus::Completed);
        assert_eq!(db.store.retry_rule_event(org, event.id, claim.rule_event_id.0, now()).await.unwrap(), Manual::Final(DeliveryStatus::Completed));
    }

    async fn a_retry_is_refused_while_running_or_due_soon_and_unknown_elsewhere(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let re = event.rule_events[0].id;
        // Pending and due now: too early.
        assert_eq!(db.store.retry_rule_event(org, event.id, re.0, now()).await.unwrap(), Manual::TooEarly);
        let claim = claim_all(&db, "worker-a").await.remove(0);
        assert_eq!(db.store.retry_rule_event(org, event.id, re.0, now()).await.unwrap(), Manual::TooEarly);
        // Waiting for a retry in a minute: made due now.
        db.store.finish_attempt(&attempt_for(&claim, OutcomeCode::RejectedServerError),
            &Disposition::RetryAt { at: now() + TimeDelta::minutes(1), throttled: false }, "worker-a", now()).await.unwrap();
        let at = now();
        assert_eq!(done(db.store.retry_rule_event(org, event.id, re.0, at).await.unwrap()).next_attempt_at, Some(at));

        let rival = db.tenant().await;
        assert_eq!(db.store.retry_rule_event(rival.organization.id, event.id, re.0, now()).await.unwrap(), Manual::NotFound);
        assert_eq!(db.store.retry_rule_event(org, EventId::new_v7(), re.0, now()).await.unwrap(), Manual::NotFound);
        assert_eq!(db.store.get_rule_event(rival.organization.id, event.id, re.0).await.unwrap(), None);
        assert_eq!(db.store.cancel_rule_event(rival.organization.id, event.id, re.0, now()).await.unwrap(), Manual::NotFound);
        assert_eq!(db.store.cancel_event(rival.organization.id, event.id, now()).await.unwrap(), None);
        assert_eq!(record(&db, org, event.id, re).await.status, DeliveryStatus::Retrying);
    }

    async fn a_cancel_beats_the_attempt_in_flight_and_rolls_the_event_up(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let other = db.rule(&connection).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule, &other], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        let first = claims.iter().find(|c| c.rule_id == rule.id).unwrap();
        let second = claims.iter().find(|c| c.rule_id == other.id).unwrap();

        let canceled = done(db.store.cancel_rule_event(org, event.id, rule.id.0, now()).await.unwrap());
        assert_eq!((canceled.status, canceled.next_attempt_at), (DeliveryStatus::Canceled, None));
        assert!(canceled.completed_at.is_some());
        // The worker's finish finds its lease gone: the attempt is kept, the cancel stands.
        let applied = db.store.finish_attempt(&attempt_for(first, OutcomeCode::Delivered), &Disposition::Completed, "worker-a", now()).await.unwrap();
        assert!(!applied);
        assert_eq!(record(&db, org, event.id, first.rule_event_id).await.status, DeliveryStatus::Canceled);
        assert_eq!(db.store.list_attempts(org, first.rule_event_id, ALL).await.unwrap().len(), 1);
        // Canceling again changes nothing; the other delivery completes: the event reads completed.
        assert_eq!(done(db.store.cancel_rule_event(org, event.id, first.rule_event_id.0, now()).await.unwrap()).completed_at, canceled.completed_at);
        finish(&db, second, Disposition::Completed).await;
        let e = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!((e.status, e.completed_count), (DeliveryStatus::Completed, 1));
        assert_eq!(db.store.cancel_rule_event(org, event.id, other.id.0, now()).await.unwrap(), Manual::Final(DeliveryStatus::Completed));
        assert_eq!(db.store.retry_rule_event(org, event.id, rule.id.0, now()).await.unwrap(), Manual::Final(DeliveryStatus::Canceled));
    }

    async fn canceling_an_event_stops_what_is_not_final_and_keeps_the_rest(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let (second, third) = (db.rule(&connection).await, db.rule(&connection).await);
        let event = enqueue(&db, &tenant.workspace, &[&rule, &second, &third], TimeDelta::seconds(1)).await;
        let claims = claim_all(&db, "worker-a").await;
        finish(&db, claims.iter().find(|c| c.rule_id == rule.id).unwrap(), Disposition::Failed).await;
        finish(&db, claims.iter().find(|c| c.rule_id == second.id).unwrap(), Disposition::Completed).await;

        assert_eq!(db.store.cancel_event(org, event.id, now()).await.unwrap(), Some(2));
        let statuses: Vec<_> = db.store.list_rule_events(org, event.id).await.unwrap().into_iter().map(|r| (r.rule_id, r.status)).collect();
        assert!(statuses.contains(&(rule.id, DeliveryStatus::Canceled)), "a failed one is canceled too");
        assert!(statuses.contains(&(second.id, DeliveryStatus::Completed)));
        assert!(statuses.contains(&(third.id, DeliveryStatus::Canceled)));
        let e = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!((e.status, e.failed_count), (DeliveryStatus::Completed, 0), "one delivered, the rest canceled");
        assert!(e.completed_at.is_some());
        let filter = ReplayFilter {
            workspace: tenant.workspace.id,
            status: DeliveryStatus::Failed,
            since: now() - TimeDelta::minutes(1),
            until: now() + TimeDelta::minutes(1),
            connection: None,
            rule: None,
        };
        assert_eq!(db.store.replay(org, &filter, now(), 100).await.unwrap().count, 0);
        assert_eq!(db.store.cancel_event(org, event.id, now()).await.unwrap(), Some(0));
        assert_eq!(claim_all(&db, "worker-b").await.len(), 0);
    }

    async fn a_delivery_canceled_in_flight_is_replayed_only_once_its_lease_has_passed(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let at = now();
        let claim = db.store.claim_due("worker-a", at, at + TimeDelta::milliseconds(600), 10, 10).await.unwrap().remove(0);
        done(db.store.cancel_rule_event(org, event.id, rule.id.0, now()).await.unwrap());
        let filter = ReplayFilter {
            workspace: tenant.workspace.id,
            status: DeliveryStatus::Canceled,
            since: now() - TimeDelta::minutes(1),
            until: now() + TimeDelta::minutes(1),
            connection: None,
            rule: None,
        };
        assert_eq!(db.store.replay(org, &filter, now(), 100).await.unwrap().count, 0, "the attempt may still be running");
        // The attempt in flight ends: not applied, the lease is not renewed for a canceled delivery.
        assert!(!db.store.finish_attempt(&attempt_for(&claim, OutcomeCode::Delivered), &Disposition::Completed, "worker-a", now()).await.unwrap());
        assert_eq!(db.store.extend_leases("worker-a", now() + TimeDelta::minutes(5)).await.unwrap(), 0);
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert_eq!(db.store.replay(org, &filter, now(), 100).await.unwrap().count, 1);
        let again = claim_all(&db, "worker-b").await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].rule_event_id, claim.rule_event_id);
    }

    async fn canceling_one_delivery_of_an_unclaimed_event_leaves_it_pending(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let other = db.rule(&connection).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule, &other], TimeDelta::seconds(1)).await;
        done(db.store.cancel_rule_event(org, event.id, rule.id.0, now()).await.unwrap());
        let e = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!((e.status, e.started_at), (DeliveryStatus::Pending, None));
        let pending = EventFilter { status: Some(DeliveryStatus::Pending), ..Default::default() };
        assert_eq!(db.store.list_events(org, &pending, ALL).await.unwrap().len(), 1);
    }

    async fn a_replay_takes_its_window_oldest_first_up_to_its_limit(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let other_rule = db.rule(&connection).await;
        let mut events = Vec::new();
        for age in [50, 40, 30, 20] {
            events.push(enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(age)).await);
        }
        let outside = enqueue(&db, &tenant.workspace, &[&other_rule], TimeDelta::seconds(35)).await;
        for claim in claim_all(&db, "worker-a").await {
            finish(&db, &claim, Disposition::Failed).await;
        }
        let filter = ReplayFilter {
            workspace: tenant.workspace.id,
            status: DeliveryStatus::Failed,
            since: now() - TimeDelta::seconds(45),
            until: now(),
            connection: Some(connection.id),
            rule: Some(rule.id),
        };
        let first = db.store.replay(org, &filter, now(), 2).await.unwrap();
        assert_eq!((first.count, first.has_more), (2, true));
        let status = |e: &handoff::domain::NewEvent| {
            let e = e.clone();
            let db = &db;
            async move { record(db, org, e.id, e.rule_events[0].id).await.status }
        };
        assert_eq!(status(&events[0]).await, DeliveryStatus::Failed, "before the window");
        assert_eq!(status(&events[1]).await, DeliveryStatus::Retrying, "oldest in the window first");
        assert_eq!(status(&events[2]).await, DeliveryStatus::Retrying);
        assert_eq!(status(&events[3]).await, DeliveryStatus::Failed);
        assert_eq!(status(&outside).await, DeliveryStatus::Failed, "another rule");
        assert_eq!(db.store.get_event(org, events[1].id).await.unwrap().unwrap().status, DeliveryStatus::Retrying);
        let rest = db.store.replay(org, &filter, now(), 10_000).await.unwrap();
        assert_eq!((rest.count, rest.has_more), (1, false));
        assert_eq!(claim_all(&db, "worker-a").await.len(), 3);

        let rival = db.tenant().await;
        assert_eq!(db.store.replay(rival.organization.id, &ReplayFilter { connection: None, rule: None, ..filter }, now(), 100).await.unwrap().count, 0);
    }

    async fn a_test_delivery_is_stored_final_marked_and_never_claimed_or_replayed(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let mut event = event_through(&tenant.workspace, &[&rule]);
        event.created_by = TEST_CREATED_BY.into();
        let re = event.rule_events[0].clone();
        let started = now();
        let attempt = handoff::domain::AttemptRecord {
            id: AttemptId::new_v7(),
            organization_id: org,
            workspace_id: tenant.workspace.id,
            event_id: event.id,
            rule_event_id: re.id,
            attempt_number: 1,
            started_at: started,
            duration_ms: 120,
            outcome_code: OutcomeCode::MappingError,
            http_status: None,
            error: Some("payload.sequence_step is missing".into()),
            calls: Vec::new(),
            is_test: true,
        };
        let test = TestDelivery { event: event.clone(), status: DeliveryStatus::Failed, attempt: attempt.clone() };
        db.store.insert_test_delivery(&test).await.unwrap();

        let e = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!((e.status, e.total_rules, e.failed_count), (DeliveryStatus::Failed, 1, 1));
        assert_eq!(e.created_by, TEST_CREATED_BY);
        assert_eq!(e.completed_at, Some(started + TimeDelta::milliseconds(120)));
        let stored = record(&db, org, event.id, re.id).await;
        assert_eq!((stored.status, stored.attempt_count, stored.next_attempt_at), (DeliveryStatus::Failed, 1, None));
        assert_eq!(stored.last_error.as_deref(), Some("payload.sequence_step is missing"));
        assert_eq!(db.store.list_attempts(org, re.id, ALL).await.unwrap(), vec![attempt]);
        assert_eq!(claim_all(&db, "worker-a").await.len(), 0);
        let filter = ReplayFilter {
            workspace: tenant.workspace.id,
            status: DeliveryStatus::Failed,
            since: started - TimeDelta::minutes(1),
            until: now() + TimeDelta::minutes(1),
            connection: None,
            rule: None,
        };
        assert_eq!(db.store.replay(org, &filter, now(), 100).await.unwrap().count, 0);
        assert_eq!(db.store.retry_rule_event(org, event.id, re.id.0, now()).await.unwrap(), Manual::Test, "a test is not retried by the queue");
        // It is not a NewRuleEvent-only trick: a second test of the same rule is a second record.
        let mut again = event_through(&tenant.workspace, &[&rule]);
        again.created_by = TEST_CREATED_BY.into();
        again.rule_events = vec![NewRuleEvent { id: RuleEventId::new_v7(), ..re }];
        let attempt = handoff::domain::AttemptRecord { id: AttemptId::new_v7(), event_id: again.id, rule_event_id: again.rule_events[0].id, outcome_code: OutcomeCode::Delivered, error: None, ..test.attempt.clone() };
        db.store.insert_test_delivery(&TestDelivery { event: again.clone(), status: DeliveryStatus::Completed, attempt }).await.unwrap();
        assert_eq!(db.store.get_event(org, again.id).await.unwrap().unwrap().status, DeliveryStatus::Completed);
    }
}
