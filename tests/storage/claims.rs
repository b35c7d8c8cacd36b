//! Claiming due deliveries: what is claimable, the joined data, leases, the per-connection cap and
//! concurrent claimers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::TimeDelta;
use handoff::backend_tests;
use handoff::domain::{
    ClaimedDelivery, ConnectionId, DeliveryStatus, Disposition, OutcomeCode, RuleEventId, now,
};
use handoff::storage::testing::{TestDb, attempt_for};
use handoff::storage::{ConnectOptions, Store, connect};

use crate::support::queue::{claim_all, enqueue, lease, record, route};

fn ids(claims: &[ClaimedDelivery]) -> Vec<RuleEventId> {
    claims.iter().map(|c| c.rule_event_id).collect()
}

backend_tests! {
    async fn a_claim_returns_due_deliveries_joined_with_event_rule_and_connection(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (connection, rule) = route(&db, &tenant.workspace).await;
        let second = db.rule(&connection).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule, &second], TimeDelta::seconds(1)).await;
        let at = now();

        let claims = db.store.claim_due("worker-a", at, lease(at), 10, 10).await.unwrap();

        assert_eq!(ids(&claims), event.rule_events.iter().map(|r| r.id).collect::<Vec<_>>());
        for (claim, planned) in claims.iter().zip(&event.rule_events) {
            assert_eq!(claim.organization_id, org);
            assert_eq!(claim.workspace_id, tenant.workspace.id);
            assert_eq!(claim.event_id, event.id);
            assert_eq!(claim.rule_id, planned.rule_id);
            assert_eq!(claim.connection_id, connection.id);
            assert_eq!((claim.attempt_count, claim.throttled_count), (0, 0));
            assert_eq!(claim.lease_until, lease(at));
            assert_eq!(claim.event, event.event);
            assert_eq!(claim.resource, event.resource);
            assert_eq!(claim.resource_id, event.resource_id);
            assert_eq!(claim.payload.as_ref(), Some(&event.payload));
            assert_eq!(claim.connection.as_ref(), Some(&connection));
            let stored_rule = db.store.get_rule(org, planned.rule_id).await.unwrap();
            assert_eq!(claim.rule, stored_rule);
            assert!(claim.rule.is_some());

            let stored = record(&db, org, event.id, claim.rule_event_id).await;
            assert_eq!(stored.status, DeliveryStatus::Processing);
            assert_eq!(stored.started_at, Some(at));
        }
        let stored = db.store.get_event(org, event.id).await.unwrap().unwrap();
        assert_eq!(stored.status, DeliveryStatus::Processing);
        assert_eq!(stored.started_at, Some(at));
    }

    async fn deliveries_not_yet_due_parked_or_leased_are_not_claimed(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        // Due in an hour.
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::hours(-1)).await;
        // Parked.
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        let parked = claim_all(&db, "worker-a").await;
        assert_eq!(parked.len(), 1);
        let attempt = attempt_for(&parked[0], OutcomeCode::AuthFailed);
        assert!(db.store.finish_attempt(&attempt, &Disposition::Parked, "worker-a", now()).await.unwrap());
        // Leased to another worker until later.
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        assert_eq!(claim_all(&db, "worker-b").await.len(), 1);

        assert_eq!(claim_all(&db, "worker-c").await, vec![]);
        // Nothing is claimable, not even what is due: zero limits claim nothing.
        let at = now();
        assert_eq!(db.store.claim_due("worker-c", at, lease(at), 0, 5).await.unwrap(), vec![]);
        assert_eq!(db.store.claim_due("worker-c", at, lease(at), 5, 0).await.unwrap(), vec![]);
    }

    async fn an_expired_lease_is_claimed_again_by_another_worker(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(10)).await;
        let first_at = now() - TimeDelta::seconds(5);
        let first = db.store
            .claim_due("worker-a", first_at, first_at + TimeDelta::seconds(2), 10, 10)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        // Still leased just before expiry.
        let before = first_at + TimeDelta::seconds(1);
        assert_eq!(db.store.claim_due("worker-b", before, lease(before), 10, 10).await.unwrap(), vec![]);

        let again = claim_all(&db, "worker-b").await;

        assert_eq!(ids(&again), ids(&first));
        assert!(again[0].lease_until > first[0].lease_until);
        // The first claim's start stays the delivery's start.
        let stored = record(&db, tenant.organization.id, event.id, first[0].rule_event_id).await;
        assert_eq!(stored.started_at, Some(first_at));
        assert_eq!(stored.status, DeliveryStatus::Processing);
    }

    async fn a_claim_takes_the_oldest_due_first_and_at_most_limit(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let mut events = Vec::new();
        for age in [3, 9, 1, 7, 5] {
            events.push((age, enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(age)).await));
        }
        events.sort_by_key(|(age, _)| -age);
        let oldest: Vec<RuleEventId> = events.iter().map(|(_, e)| e.rule_events[0].id).collect();
        let at = now();

        let first = db.store.claim_due("worker-a", at, lease(at), 3, 3).await.unwrap();
        let rest = db.store.claim_due("worker-a", at, lease(at), 3, 3).await.unwrap();

        assert_eq!(ids(&first), oldest[..3]);
        assert_eq!(ids(&rest), oldest[3..]);
    }

    async fn one_claim_takes_at_most_per_connection_deliveries_of_a_connection(db: TestDb) {
        let tenant = db.tenant().await;
        let (busy, busy_rule) = route(&db, &tenant.workspace).await;
        let (quiet, quiet_rule) = route(&db, &tenant.workspace).await;
        // The busy connection's backlog is older than everything of the quiet one.
        for age in 0..10 {
            enqueue(&db, &tenant.workspace, &[&busy_rule], TimeDelta::seconds(100 + age)).await;
        }
        for age in 0..4 {
            enqueue(&db, &tenant.workspace, &[&quiet_rule], TimeDelta::seconds(10 + age)).await;
        }
        let at = now();

        let claims = db.store.claim_due("worker-a", at, lease(at), 8, 3).await.unwrap();

        let mut per_connection: HashMap<ConnectionId, usize> = HashMap::new();
        for claim in &claims {
            *per_connection.entry(claim.connection_id).or_default() += 1;
        }
        assert_eq!(per_connection.get(&busy.id), Some(&3), "{per_connection:?}");
        assert_eq!(per_connection.get(&quiet.id), Some(&3), "{per_connection:?}");
        // Oldest due first overall: the busy backlog leads.
        assert!(claims[..3].iter().all(|c| c.connection_id == busy.id));

        // The limit still binds below the caps.
        let more = db.store.claim_due("worker-a", at, lease(at), 2, 3).await.unwrap();
        assert_eq!(more.len(), 2);
        assert!(more.iter().all(|c| c.connection_id == busy.id));
    }

    async fn excluded_connections_are_left_alone_even_when_their_backlog_is_oldest(db: TestDb) {
        let tenant = db.tenant().await;
        let (busy, busy_rule) = route(&db, &tenant.workspace).await;
        let (quiet, quiet_rule) = route(&db, &tenant.workspace).await;
        for age in 0..10 {
            enqueue(&db, &tenant.workspace, &[&busy_rule], TimeDelta::seconds(100 + age)).await;
        }
        for age in 0..2 {
            enqueue(&db, &tenant.workspace, &[&quiet_rule], TimeDelta::seconds(10 + age)).await;
        }
        let at = now();
        let claims = db.store.claim_due_excluding("worker-a", at, lease(at), 8, 8, &[busy.id]).await.unwrap();
        assert_eq!(claims.len(), 2);
        assert!(claims.iter().all(|c| c.connection_id == quiet.id));
        let rest = db.store.claim_due_excluding("worker-a", at, lease(at), 8, 8, &[quiet.id]).await.unwrap();
        assert_eq!(rest.len(), 8);
        assert!(rest.iter().all(|c| c.connection_id == busy.id));
    }

    async fn a_renewed_lease_is_not_claimed_again_and_other_owners_keep_theirs(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(10)).await;
        enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(9)).await;
        let at = now();
        let short = at + TimeDelta::seconds(5);
        assert_eq!(db.store.claim_due("worker-a", at, short, 1, 8).await.unwrap().len(), 1);
        assert_eq!(db.store.claim_due("worker-b", at, short, 1, 8).await.unwrap().len(), 1);
        assert_eq!(db.store.extend_leases("worker-a", at + TimeDelta::seconds(60)).await.unwrap(), 1);
        // Ten seconds on, only worker-b's lease has expired.
        let later = at + TimeDelta::seconds(10);
        let reclaimed = db.store.claim_due("worker-c", later, lease(later), 8, 8).await.unwrap();
        assert_eq!(reclaimed.len(), 1);
    }

    async fn a_deleted_rule_or_connection_is_none_in_the_claim(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let (kept, rule_gone) = route(&db, &tenant.workspace).await;
        let (gone, rule_of_gone) = route(&db, &tenant.workspace).await;
        let first = enqueue(&db, &tenant.workspace, &[&rule_gone], TimeDelta::seconds(2)).await;
        let second = enqueue(&db, &tenant.workspace, &[&rule_of_gone], TimeDelta::seconds(1)).await;
        db.store.delete_rule(org, rule_gone.id).await.unwrap().unwrap();
        db.store.delete_connection(org, gone.id, true).await.unwrap();

        let claims = claim_all(&db, "worker-a").await;

        assert_eq!(ids(&claims), vec![first.rule_events[0].id, second.rule_events[0].id]);
        assert_eq!(claims[0].rule, None);
        assert_eq!(claims[0].rule_id, rule_gone.id);
        assert_eq!(claims[0].connection.as_ref().map(|c| c.id), Some(kept.id));
        assert_eq!((claims[1].rule.clone(), claims[1].connection.clone()), (None, None));
        assert_eq!(claims[1].connection_id, gone.id);
    }

    async fn a_purged_payload_is_none_in_the_claim(db: TestDb) {
        let tenant = db.tenant().await;
        let (_, rule) = route(&db, &tenant.workspace).await;
        let event = enqueue(&db, &tenant.workspace, &[&rule], TimeDelta::seconds(1)).await;
        crate::support::execute(
            &db,
            "UPDATE events SET payload = NULL",
            "UPDATE events SET payload = NULL",
        )
        .await;

        let claims = claim_all(&db, "worker-a").await;

        assert_eq!(ids(&claims), vec![event.rule_events[0].id]);
        assert_eq!(claims[0].payload, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_never_take_the_same_delivery(db: TestDb) {
        let tenant = db.tenant().await;
        let mut rules = Vec::new();
        for _ in 0..4 {
            rules.push(route(&db, &tenant.workspace).await.1);
        }
        let mut expected = HashSet::new();
        let mut batch = Vec::new();
        for i in 0..100 {
            let rule_refs: Vec<_> = rules.iter().skip(i % 2).step_by(2).collect();
            let mut event = handoff::storage::testing::event_through(&tenant.workspace, &rule_refs);
            event.created_at = now() - TimeDelta::seconds(1);
            expected.extend(event.rule_events.iter().map(|r| r.id));
            batch.push(event);
        }
        db.store.insert_events(&batch).await.unwrap();
        assert_eq!(expected.len(), 200);
        // On PostgreSQL each claimer has its own pool, as separate nodes would.
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..4 {
            stores.push(match db.store.backend() {
                "postgres" => connect(&db.url, ConnectOptions::default()).await.unwrap(),
                _ => db.store.clone(),
            });
        }

        let mut tasks = Vec::new();
        for (n, store) in stores.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let owner = format!("worker-{n}");
                let mut mine = Vec::new();
                loop {
                    let at = now();
                    let claims = store.claim_due(&owner, at, lease(at), 7, 3).await.unwrap();
                    if claims.is_empty() {
                        return mine;
                    }
                    assert!(claims.iter().all(|c| c.rule.is_some() && c.connection.is_some()));
                    mine.extend(ids(&claims));
                }
            }));
        }
        let mut seen = HashSet::new();
        let mut claimers_with_work = 0;
        for task in tasks {
            let mine = task.await.unwrap();
            claimers_with_work += usize::from(!mine.is_empty());
            for id in mine {
                assert!(seen.insert(id), "{id} was claimed twice");
            }
        }
        assert_eq!(seen, expected);
        assert!(claimers_with_work >= 2, "the claims did not run side by side");
    }
}
