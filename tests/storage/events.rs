//! Committing events with their rule events.

use handoff::backend_tests;
use handoff::domain::{DeliveryStatus, InsertOutcome, OrganizationId};
use handoff::storage::testing::TestDb;

use crate::support::{event, scalar};

backend_tests! {
    async fn inserted_events_read_back_equal_with_their_rule_counts(db: TestDb) {
        let tenant = db.tenant().await;
        let batch = vec![event(&tenant.workspace, 2), event(&tenant.workspace, 1)];

        let outcomes = db.store.insert_events(&batch).await.unwrap();

        assert_eq!(outcomes.len(), 2);
        for (new, outcome) in batch.iter().zip(&outcomes) {
            let InsertOutcome::Inserted(record) = outcome else { panic!("{outcome:?}") };
            assert_eq!(record.id, new.id);
            assert_eq!(record.status, DeliveryStatus::Pending);
            assert_eq!(record.total_rules, new.rule_events.len() as i64);
            assert_eq!((record.completed_count, record.failed_count), (0, 0));
            assert_eq!((record.started_at, record.completed_at), (None, None));
            let stored = db.store.get_event(tenant.organization.id, new.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(record));
        }
    }

    async fn rule_events_start_pending_and_due_at_the_events_creation(db: TestDb) {
        let tenant = db.tenant().await;
        let new = event(&tenant.workspace, 3);
        db.store.insert_events(std::slice::from_ref(&new)).await.unwrap();

        let due = scalar(
            &db,
            "SELECT count(*) FROM rule_events r JOIN events e ON e.id = r.event_id \
             WHERE r.event_id = {id} AND r.status = 'pending' \
               AND r.next_attempt_at = e.created_at AND r.created_at = e.created_at \
               AND r.attempt_count = 0 AND r.throttled_count = 0 AND r.lease_until IS NULL \
               AND r.organization_id = e.organization_id AND r.workspace_id = e.workspace_id \
               AND r.created_by = 'publishable_key' AND r.integration_type = 'activecampaign'",
            new.id.0,
        )
        .await;
        assert_eq!(due, 3);
    }

    async fn an_event_without_rules_is_completed_on_arrival(db: TestDb) {
        let tenant = db.tenant().await;
        let new = event(&tenant.workspace, 0);

        let outcomes = db.store.insert_events(std::slice::from_ref(&new)).await.unwrap();

        let InsertOutcome::Inserted(record) = &outcomes[0] else { panic!("{outcomes:?}") };
        assert_eq!(record.status, DeliveryStatus::Completed);
        assert_eq!(record.total_rules, 0);
        assert_eq!(record.completed_at, Some(new.created_at));
        let stored = db.store.get_event(tenant.organization.id, new.id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(record));
        assert_eq!(scalar(&db, "SELECT count(*) FROM rule_events WHERE event_id = {id}", new.id.0).await, 0);
    }

    async fn another_organization_cannot_read_an_event(db: TestDb) {
        let tenant = db.tenant().await;
        let other = db.tenant().await;
        let new = event(&tenant.workspace, 1);
        db.store.insert_events(std::slice::from_ref(&new)).await.unwrap();

        assert_eq!(db.store.get_event(other.organization.id, new.id).await.unwrap(), None);
        assert_eq!(db.store.get_event(OrganizationId::new_v4(), new.id).await.unwrap(), None);
    }

    async fn an_empty_batch_commits_nothing(db: TestDb) {
        assert_eq!(db.store.insert_events(&[]).await.unwrap(), vec![]);
    }

    async fn a_batch_is_one_transaction_so_one_bad_event_stores_none(db: TestDb) {
        let tenant = db.tenant().await;
        let other = db.tenant().await;
        let good = event(&tenant.workspace, 1);
        // Claims a workspace of another organization: the database refuses it.
        let mut bad = event(&other.workspace, 1);
        bad.organization_id = tenant.organization.id;

        let result = db.store.insert_events(&[good.clone(), bad]).await;

        assert!(result.is_err(), "{result:?}");
        assert_eq!(db.store.get_event(tenant.organization.id, good.id).await.unwrap(), None);
        assert_eq!(scalar(&db, "SELECT count(*) FROM rule_events WHERE event_id = {id}", good.id.0).await, 0);
    }

    async fn events_keep_microsecond_timestamps_exactly(db: TestDb) {
        let tenant = db.tenant().await;
        let mut new = event(&tenant.workspace, 1);
        new.created_at = chrono::DateTime::from_timestamp_micros(1_774_105_560_123_457).unwrap();

        db.store.insert_events(std::slice::from_ref(&new)).await.unwrap();

        let stored = db.store.get_event(tenant.organization.id, new.id).await.unwrap().unwrap();
        assert_eq!(stored.created_at, new.created_at);
    }
}
