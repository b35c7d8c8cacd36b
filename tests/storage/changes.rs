//! The rule change feed: committed writes to rules and connections are announced on every store of
//! the same database; the feed ends with its store.

use std::sync::Arc;
use std::time::Duration;

use handoff::backend_tests;
use handoff::domain::{ConnectionId, RuleChange, RuleId, now};
use handoff::storage::testing::{TestDb, rule_for};
use handoff::storage::{ConnectOptions, Store, connect};
use tokio::sync::mpsc::Receiver;

/// How long an announcement may take.
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(1);

/// The next change, or `None` when none arrives in time (or the feed ended).
async fn next(feed: &mut Receiver<RuleChange>) -> Option<RuleChange> {
    tokio::time::timeout(ANNOUNCED_WITHIN, feed.recv())
        .await
        .ok()
        .flatten()
}

/// A second store on the database: on PostgreSQL a separate pool, as another node would have.
async fn another_store(db: &TestDb) -> Arc<dyn Store> {
    connect(&db.url, ConnectOptions::default()).await.unwrap()
}

backend_tests! {
    async fn every_write_to_rules_and_connections_is_announced_on_another_store(db: TestDb) {
        let observer = another_store(&db).await;
        let mut feed = observer.rule_changes().await.unwrap();
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let changed = Some(RuleChange::Workspace(tenant.workspace.id));
        let store = &db.store;

        let connection = db.connection(&tenant.workspace).await;
        assert_eq!(next(&mut feed).await, changed, "create_connection");
        let rule = db.rule(&connection).await;
        assert_eq!(next(&mut feed).await, changed, "create_rule");
        let mut edited = rule.clone();
        edited.event = "user.signed_up".into();
        store.update_rule(org, &edited).await.unwrap().unwrap();
        assert_eq!(next(&mut feed).await, changed, "update_rule");
        store.delete_rule(org, rule.id).await.unwrap().unwrap();
        assert_eq!(next(&mut feed).await, changed, "delete_rule");
        let mut renamed = connection.clone();
        renamed.name = "Renamed".into();
        store.update_connection(org, &renamed).await.unwrap().unwrap();
        assert_eq!(next(&mut feed).await, changed, "update_connection");
        assert!(store.set_connection_active(org, connection.id, false, Some("authentication_invalid"), now()).await.unwrap());
        assert_eq!(next(&mut feed).await, changed, "set_connection_active");
        store.create_rule(&rule_for(&connection)).await.unwrap();
        assert_eq!(next(&mut feed).await, changed, "create_rule");
        store.delete_connection(org, connection.id, true).await.unwrap();
        assert_eq!(next(&mut feed).await, changed, "delete_connection");
    }

    async fn the_announcement_names_the_changed_workspace(db: TestDb) {
        let first = db.tenant().await;
        let second = db.tenant().await;
        let mut feed = db.store.rule_changes().await.unwrap();

        db.connection(&second.workspace).await;
        db.connection(&first.workspace).await;

        assert_eq!(next(&mut feed).await, Some(RuleChange::Workspace(second.workspace.id)));
        assert_eq!(next(&mut feed).await, Some(RuleChange::Workspace(first.workspace.id)));
    }

    async fn writes_that_change_nothing_announce_nothing(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let connection = db.connection(&tenant.workspace).await;
        let rule = db.rule(&connection).await;
        let other = db.tenant().await;
        let observer = another_store(&db).await;
        let mut feed = observer.rule_changes().await.unwrap();
        let store = &db.store;

        // Not found, another organization's, refused: none of these commits anything.
        let mut missing = rule.clone();
        missing.id = RuleId::new_v7();
        assert_eq!(store.update_rule(org, &missing).await.unwrap(), None);
        assert_eq!(store.update_rule(other.organization.id, &rule).await.unwrap(), None);
        assert_eq!(store.delete_rule(other.organization.id, rule.id).await.unwrap(), None);
        assert!(!store.set_connection_active(org, ConnectionId::new_v7(), false, None, now()).await.unwrap());
        store.delete_connection(org, connection.id, false).await.unwrap(); // in use: refused
        let mut stray = rule_for(&connection);
        stray.workspace_id = other.workspace.id;
        stray.organization_id = other.organization.id;
        store.create_rule(&stray).await.unwrap_err();
        // A marker: whatever arrives first must be this one.
        db.connection(&other.workspace).await;

        assert_eq!(next(&mut feed).await, Some(RuleChange::Workspace(other.workspace.id)));
    }

    async fn every_subscriber_hears_every_change(db: TestDb) {
        let tenant = db.tenant().await;
        let observer = another_store(&db).await;
        let mut feeds = vec![
            observer.rule_changes().await.unwrap(),
            observer.rule_changes().await.unwrap(),
            db.store.rule_changes().await.unwrap(),
        ];

        db.connection(&tenant.workspace).await;

        for feed in &mut feeds {
            assert_eq!(next(feed).await, Some(RuleChange::Workspace(tenant.workspace.id)));
        }
    }

    async fn the_feed_ends_when_its_store_is_dropped(db: TestDb) {
        let store = another_store(&db).await;
        let mut feed = store.rule_changes().await.unwrap();

        drop(store);

        let ended = tokio::time::timeout(ANNOUNCED_WITHIN, feed.recv()).await;
        assert_eq!(ended, Ok(None));
        // The database's own store is unaffected and still announces to its subscribers.
        let mut live = db.store.rule_changes().await.unwrap();
        let tenant = db.tenant().await;
        db.connection(&tenant.workspace).await;
        assert_eq!(next(&mut live).await, Some(RuleChange::Workspace(tenant.workspace.id)));
    }

    async fn a_dropped_receiver_does_not_disturb_writes_or_other_subscribers(db: TestDb) {
        let tenant = db.tenant().await;
        let dropped = db.store.rule_changes().await.unwrap();
        let mut kept = db.store.rule_changes().await.unwrap();
        drop(dropped);

        for _ in 0..3 {
            db.connection(&tenant.workspace).await;
        }

        for _ in 0..3 {
            assert_eq!(next(&mut kept).await, Some(RuleChange::Workspace(tenant.workspace.id)));
        }
    }
}

/// PostgreSQL only: the listener's session is terminated by the server; the feed says `All` (changes
/// may have been missed) once it listens again, and keeps announcing.
#[tokio::test]
async fn a_lost_listener_connection_is_reopened_and_announces_a_full_reload() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("skipped: no TEST_DATABASE_URL");
        return;
    };
    let tenant = db.tenant().await;
    let observer = another_store(&db).await;
    let mut feed = observer.rule_changes().await.unwrap();
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();

    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN %'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true]);

    let reload = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await;
    assert_eq!(reload, Ok(Some(RuleChange::All)));
    db.connection(&tenant.workspace).await;
    assert_eq!(
        next(&mut feed).await,
        Some(RuleChange::Workspace(tenant.workspace.id))
    );
    admin.close().await;
}

/// PostgreSQL only: dropping the receiver closes the listener's session.
#[tokio::test]
async fn a_dropped_receiver_closes_its_listener_session() {
    use sqlx::Connection;

    let Some(db) = TestDb::postgres().await else {
        eprintln!("skipped: no TEST_DATABASE_URL");
        return;
    };
    // One plain connection (a pool might open a second one and skew the count).
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    async fn sessions(admin: &mut sqlx::PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(admin)
        .await
        .unwrap()
    }
    let before = sessions(&mut admin).await;
    let feed = db.store.rule_changes().await.unwrap();
    assert_eq!(sessions(&mut admin).await, before + 1);

    drop(feed);

    // The session closes in the background; poll, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sessions(&mut admin).await > before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener session still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.close().await.unwrap();
}
