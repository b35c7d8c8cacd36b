//! Builders for events and raw SQL helpers for asserting on rows the `Store` does not expose.

use handoff::domain::{
    ConnectionId, DeliveryStatus, IdempotencyClaim, NewEvent, NewRuleEvent, RuleEventId, RuleId,
    Workspace, now,
};
use handoff::storage::testing::TestDb;
use uuid::Uuid;

/// A `page.completed` event for `workspace` that fans out to `rules` deliveries.
pub fn event(workspace: &Workspace, rules: usize) -> NewEvent {
    NewEvent {
        id: handoff::domain::EventId::new_v7(),
        organization_id: workspace.organization_id,
        workspace_id: workspace.id,
        event: "page.completed".into(),
        resource: "onboarding_sequence".into(),
        resource_id: Some("workspace-setup".into()),
        payload: serde_json::json!({"email": "alex@northstar.io", "first_name": "Alex", "step": 3}),
        contact_email: Some("alex@northstar.io".into()),
        created_by: "publishable_key".into(),
        created_at: now(),
        status: if rules == 0 {
            DeliveryStatus::Completed
        } else {
            DeliveryStatus::Pending
        },
        rule_events: (0..rules)
            .map(|_| NewRuleEvent {
                id: RuleEventId::new_v7(),
                rule_id: RuleId::new_v7(),
                connection_id: ConnectionId::new_v7(),
                integration_type: "activecampaign".into(),
            })
            .collect(),
        idempotency: None,
    }
}

/// `event` carrying an `Idempotency-Key` claim.
pub fn keyed(mut event: NewEvent, key: &str, request_hash: &str) -> NewEvent {
    event.idempotency = Some(IdempotencyClaim {
        key: key.into(),
        request_hash: request_hash.into(),
    });
    event
}

/// Runs a query returning one integer; `{id}` in `sql` is replaced by a UUID literal of the
/// backend's representation.
pub async fn scalar(db: &TestDb, sql: &str, id: Uuid) -> i64 {
    match db.store.backend() {
        "postgres" => {
            let sql = sql.replace("{id}", &format!("'{id}'::uuid"));
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let value: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            value
        }
        _ => {
            let sql = sql.replace("{id}", &format!("x'{}'", id.simple()));
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let value: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            value
        }
    }
}

/// Runs a statement, spelled per backend.
pub async fn execute(db: &TestDb, postgres: &str, sqlite: &str) {
    match db.store.backend() {
        "postgres" => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(postgres).execute(&pool).await.unwrap();
            pool.close().await;
        }
        _ => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(sqlite).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Helpers for the delivery queue tests.
pub mod queue {
    use chrono::{DateTime, TimeDelta, Utc};
    use handoff::domain::{
        ClaimedDelivery, Connection, EventId, NewEvent, OrganizationId, Rule, RuleEventId,
        Workspace, now,
    };
    use handoff::storage::RuleEventRecord;
    use handoff::storage::testing::{TestDb, event_through};

    /// A lease long enough for any test.
    pub fn lease(at: DateTime<Utc>) -> DateTime<Utc> {
        at + TimeDelta::minutes(5)
    }

    /// A stored connection in `workspace` and a stored rule through it.
    pub async fn route(db: &TestDb, workspace: &Workspace) -> (Connection, Rule) {
        let connection = db.connection(workspace).await;
        let rule = db.rule(&connection).await;
        (connection, rule)
    }

    /// Stores an event in `workspace` with one delivery per rule, due `age` ago.
    pub async fn enqueue(
        db: &TestDb,
        workspace: &Workspace,
        rules: &[&Rule],
        age: TimeDelta,
    ) -> NewEvent {
        let mut event = event_through(workspace, rules);
        event.created_at = now() - age;
        db.store
            .insert_events(std::slice::from_ref(&event))
            .await
            .unwrap();
        event
    }

    /// Claims everything due now (generous limits) for `owner`.
    pub async fn claim_all(db: &TestDb, owner: &str) -> Vec<ClaimedDelivery> {
        let at = now();
        db.store
            .claim_due(owner, at, lease(at), 1000, 1000)
            .await
            .unwrap()
    }

    /// The stored record of one rule event.
    pub async fn record(
        db: &TestDb,
        org: OrganizationId,
        event: EventId,
        id: RuleEventId,
    ) -> RuleEventRecord {
        db.store
            .list_rule_events(org, event)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
            .expect("the rule event is listed")
    }
}
