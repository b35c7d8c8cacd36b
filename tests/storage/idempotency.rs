//! The idempotency contract of `insert_events`: replays, conflicts, expiry, and races.

use chrono::TimeDelta;
use handoff::backend_tests;
use handoff::domain::{InsertOutcome, now};
use handoff::storage::testing::TestDb;

use crate::support::{event, keyed, scalar};

/// The record of an `Inserted` outcome.
fn inserted(outcome: &InsertOutcome) -> handoff::domain::EventRecord {
    match outcome {
        InsertOutcome::Inserted(record) => record.clone(),
        other => panic!("expected Inserted, got {other:?}"),
    }
}

backend_tests! {
    async fn a_repeat_with_the_same_body_replays_the_original_and_stores_nothing(db: TestDb) {
        let tenant = db.tenant().await;
        let original = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        let first = inserted(&db.store.insert_events(&[original]).await.unwrap()[0]);

        let repeat = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        let outcomes = db.store.insert_events(std::slice::from_ref(&repeat)).await.unwrap();

        assert_eq!(outcomes, vec![InsertOutcome::Replayed(first)]);
        assert_eq!(db.store.get_event(tenant.organization.id, repeat.id).await.unwrap(), None);
        let stored = scalar(&db, "SELECT count(*) FROM events WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(stored, 1);
    }

    async fn a_repeat_with_another_body_is_a_conflict_and_stores_nothing(db: TestDb) {
        let tenant = db.tenant().await;
        let original = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        db.store.insert_events(&[original]).await.unwrap();

        let other = keyed(event(&tenant.workspace, 1), "order-1", "hash-b");
        let outcomes = db.store.insert_events(std::slice::from_ref(&other)).await.unwrap();

        assert_eq!(outcomes, vec![InsertOutcome::IdempotencyConflict]);
        assert_eq!(db.store.get_event(tenant.organization.id, other.id).await.unwrap(), None);
        assert_eq!(scalar(&db, "SELECT count(*) FROM rule_events WHERE event_id = {id}", other.id.0).await, 0);
    }

    async fn one_key_twice_in_one_batch_is_stored_once(db: TestDb) {
        let tenant = db.tenant().await;
        let first = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        let same = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        let different = keyed(event(&tenant.workspace, 1), "order-1", "hash-b");
        let unkeyed = event(&tenant.workspace, 1);

        let outcomes = db
            .store
            .insert_events(&[first.clone(), same.clone(), different, unkeyed.clone()])
            .await
            .unwrap();

        let record = inserted(&outcomes[0]);
        assert_eq!(record.id, first.id);
        assert_eq!(outcomes[1], InsertOutcome::Replayed(record));
        assert_eq!(outcomes[2], InsertOutcome::IdempotencyConflict);
        assert_eq!(inserted(&outcomes[3]).id, unkeyed.id);
        let stored = scalar(&db, "SELECT count(*) FROM events WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(stored, 2);
    }

    async fn the_same_key_in_another_workspace_is_a_new_event(db: TestDb) {
        let tenant = db.tenant().await;
        let other = db.tenant().await;
        db.store
            .insert_events(&[keyed(event(&tenant.workspace, 1), "order-1", "hash-a")])
            .await
            .unwrap();

        let elsewhere = keyed(event(&other.workspace, 1), "order-1", "hash-a");
        let outcomes = db.store.insert_events(std::slice::from_ref(&elsewhere)).await.unwrap();

        assert_eq!(inserted(&outcomes[0]).id, elsewhere.id);
    }

    async fn an_expired_record_is_replaced_by_the_new_event(db: TestDb) {
        let tenant = db.tenant().await;
        let mut old = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        old.created_at = now() - TimeDelta::hours(25);
        db.store.insert_events(&[old]).await.unwrap();

        let fresh = keyed(event(&tenant.workspace, 1), "order-1", "hash-b");
        let outcomes = db.store.insert_events(std::slice::from_ref(&fresh)).await.unwrap();
        let record = inserted(&outcomes[0]);
        assert_eq!(record.id, fresh.id);

        // The key now answers with the new event.
        let repeat = keyed(event(&tenant.workspace, 1), "order-1", "hash-b");
        let outcomes = db.store.insert_events(&[repeat]).await.unwrap();
        assert_eq!(outcomes, vec![InsertOutcome::Replayed(record)]);
    }

    async fn a_record_inside_the_window_still_answers(db: TestDb) {
        let tenant = db.tenant().await;
        let mut old = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        old.created_at = now() - TimeDelta::hours(23);
        let original = inserted(&db.store.insert_events(&[old]).await.unwrap()[0]);

        let repeat = keyed(event(&tenant.workspace, 1), "order-1", "hash-a");
        let outcomes = db.store.insert_events(&[repeat]).await.unwrap();

        assert_eq!(outcomes, vec![InsertOutcome::Replayed(original)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn twenty_concurrent_requests_with_one_key_store_exactly_one_event(db: TestDb) {
        let tenant = db.tenant().await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let store = db.store.clone();
            let new = keyed(event(&tenant.workspace, 2), "order-1", "hash-a");
            tasks.spawn(async move { store.insert_events(&[new]).await });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            outcomes.extend(joined.unwrap().unwrap());
        }

        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                InsertOutcome::Inserted(record) => Some(record.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let winner = &winners[0];
        for outcome in &outcomes {
            if !matches!(outcome, InsertOutcome::Inserted(_)) {
                assert_eq!(outcome, &InsertOutcome::Replayed(winner.clone()));
            }
        }
        let stored = scalar(&db, "SELECT count(*) FROM events WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(stored, 1);
        let deliveries = scalar(&db, "SELECT count(*) FROM rule_events WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(deliveries, 2);
    }

    async fn purging_removes_only_records_older_than_the_cutoff(db: TestDb) {
        let tenant = db.tenant().await;
        let mut old = keyed(event(&tenant.workspace, 0), "old", "hash-a");
        old.created_at = now() - TimeDelta::hours(25);
        let recent = keyed(event(&tenant.workspace, 0), "recent", "hash-a");
        let recent_record = inserted(&db.store.insert_events(&[old, recent]).await.unwrap()[1]);

        let purged = db.store.purge_idempotency(now() - TimeDelta::hours(24)).await.unwrap();

        assert_eq!(purged, 1);
        assert_eq!(db.store.purge_idempotency(now() - TimeDelta::hours(24)).await.unwrap(), 0);
        let remaining = scalar(&db, "SELECT count(*) FROM idempotency_keys WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(remaining, 1);
        let repeat = keyed(event(&tenant.workspace, 0), "recent", "hash-a");
        let outcomes = db.store.insert_events(&[repeat]).await.unwrap();
        assert_eq!(outcomes, vec![InsertOutcome::Replayed(recent_record)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_batches_sharing_keys_in_any_order_store_each_key_once(db: TestDb) {
        let tenant = db.tenant().await;
        let keys = ["a", "b", "c", "d"];
        let mut tasks = tokio::task::JoinSet::new();
        for round in 0..12 {
            let store = db.store.clone();
            // Each batch lists the keys in another order, which would deadlock batches that took
            // their row locks in input order.
            let mut order = keys.to_vec();
            order.rotate_left(round % keys.len());
            if round % 2 == 1 {
                order.reverse();
            }
            let batch: Vec<_> = order
                .iter()
                .map(|key| keyed(event(&tenant.workspace, 1), key, "same-body"))
                .collect();
            tasks.spawn(async move { store.insert_events(&batch).await });
        }
        let mut inserted_ids = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            for outcome in joined.unwrap().unwrap() {
                match outcome {
                    InsertOutcome::Inserted(record) => inserted_ids.push(record.id),
                    InsertOutcome::Replayed(_) => {}
                    InsertOutcome::IdempotencyConflict => panic!("same body, no conflict"),
                }
            }
        }

        assert_eq!(inserted_ids.len(), keys.len());
        let stored = scalar(&db, "SELECT count(*) FROM events WHERE workspace_id = {id}", tenant.workspace.id.0).await;
        assert_eq!(stored, keys.len() as i64);
    }
}
