//! Connections: create, get, list pages, update, activation, deletion with and without force,
//! and tenant scoping.

use handoff::backend_tests;
use handoff::domain::{ConnectionDeletion, ConnectionId, Workspace, WorkspaceId, now};
use handoff::storage::testing::{Tenant, TestDb, connection_for, publishable_key_for, rule_for};
use handoff::storage::{PageRequest, StorageError};

use crate::support::{event, scalar};

const ALL: PageRequest = PageRequest {
    limit: 200,
    before: None,
};

/// Stores a second workspace in the tenant's organization.
async fn sibling_workspace(db: &TestDb, tenant: &Tenant, name: &str) -> Workspace {
    let at = now();
    let workspace = Workspace {
        id: WorkspaceId::new_v7(),
        organization_id: tenant.organization.id,
        name: name.into(),
        description: None,
        created_at: at,
        updated_at: at,
    };
    db.store
        .create_workspace(&workspace, &publishable_key_for(&workspace))
        .await
        .unwrap();
    workspace
}

fn ids(connections: &[handoff::domain::Connection]) -> Vec<ConnectionId> {
    connections.iter().map(|c| c.id).collect()
}

backend_tests! {
    async fn a_created_connection_is_read_back_equal(db: TestDb) {
        let tenant = db.tenant().await;
        let mut plain = connection_for(&tenant.workspace);
        plain.hidden = true;
        let mut limited = connection_for(&tenant.workspace);
        limited.rate_limit_per_second = Some(u32::MAX);
        limited.active = false;
        limited.inactive_reason = Some("authentication_invalid".into());
        limited.api_key_ciphertext = vec![0, 255, 0, 1];

        for connection in [&plain, &limited] {
            db.store.create_connection(connection).await.unwrap();
            let stored = db.store.get_connection(tenant.organization.id, connection.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(connection));
        }
    }

    async fn a_connection_cannot_be_created_in_another_organizations_workspace(db: TestDb) {
        let owner = db.tenant().await;
        let intruder = db.tenant().await;
        let mut connection = connection_for(&owner.workspace);
        connection.organization_id = intruder.organization.id;

        let err = db.store.create_connection(&connection).await.unwrap_err();

        assert!(matches!(err, StorageError::NotFound("workspace")), "{err:?}");
        assert!(db.store.list_connections(owner.organization.id, None, ALL).await.unwrap().is_empty());
        assert!(db.store.list_connections(intruder.organization.id, None, ALL).await.unwrap().is_empty());
    }

    async fn connection_pages_run_newest_first_per_organization_and_per_workspace(db: TestDb) {
        let tenant = db.tenant().await;
        let other = db.tenant().await;
        db.connection(&other.workspace).await; // never listed for `tenant`
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let mut production = Vec::new();
        let mut everything = Vec::new();
        for i in 0..5 {
            let c = db.connection(&tenant.workspace).await;
            production.push(c.id);
            everything.push(c.id);
            if i % 2 == 0 {
                everything.push(db.connection(&staging).await.id);
            }
        }
        production.reverse();
        everything.reverse();
        let org = tenant.organization.id;

        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut before = None;
        loop {
            let page = db.store.list_connections(org, None, PageRequest { limit: 3, before }).await.unwrap();
            sizes.push(page.len());
            let Some(last) = page.last() else { break };
            before = Some(last.id.0);
            seen.extend(ids(&page));
        }
        assert_eq!(sizes, vec![3, 3, 2, 0]);
        assert_eq!(seen, everything);

        let first = db
            .store
            .list_connections(org, Some(tenant.workspace.id), PageRequest { limit: 2, before: None })
            .await
            .unwrap();
        assert_eq!(ids(&first), production[..2]);
        let rest = db
            .store
            .list_connections(org, Some(tenant.workspace.id), PageRequest { limit: 50, before: Some(first[1].id.0) })
            .await
            .unwrap();
        assert_eq!(ids(&rest), production[2..]);
        let listed = db.store.list_connections(org, Some(staging.id), ALL).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|c| c.workspace_id == staging.id));
    }

    async fn an_update_replaces_the_mutable_fields_and_keeps_the_rest(db: TestDb) {
        let tenant = db.tenant().await;
        let original = db.connection(&tenant.workspace).await;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let later = now() + chrono::TimeDelta::seconds(5);
        let mut changed = original.clone();
        changed.name = "Renamed".into();
        changed.api_url = "https://renamed.api-us1.com".into();
        changed.api_key_ciphertext = vec![9, 9, 9];
        changed.rate_limit_per_second = Some(50);
        changed.hidden = true;
        changed.active = false;
        changed.inactive_reason = Some("authentication_invalid".into());
        changed.updated_at = later;
        // Not replaceable: these must stay as stored.
        let mut request = changed.clone();
        request.workspace_id = staging.id;
        request.integration_type = "hubspot".into();
        request.created_by = "someone".into();
        request.created_at = later;

        let updated = db.store.update_connection(tenant.organization.id, &request).await.unwrap();

        assert_eq!(updated.as_ref(), Some(&changed));
        let stored = db.store.get_connection(tenant.organization.id, original.id).await.unwrap();
        assert_eq!(stored, Some(changed.clone()));

        // And back: clearing the optional fields clears them.
        let mut cleared = changed;
        cleared.rate_limit_per_second = None;
        cleared.inactive_reason = None;
        cleared.active = true;
        let updated = db.store.update_connection(tenant.organization.id, &cleared).await.unwrap();
        assert_eq!(updated, Some(cleared));
    }

    async fn a_connection_is_deactivated_and_reactivated(db: TestDb) {
        let tenant = db.tenant().await;
        let connection = db.connection(&tenant.workspace).await;
        let org = tenant.organization.id;
        let later = now() + chrono::TimeDelta::seconds(5);

        let found = db
            .store
            .set_connection_active(org, connection.id, false, Some("authentication_invalid"), later)
            .await
            .unwrap();

        assert!(found);
        let stored = db.store.get_connection(org, connection.id).await.unwrap().unwrap();
        assert!(!stored.active);
        assert_eq!(stored.inactive_reason.as_deref(), Some("authentication_invalid"));
        assert_eq!(stored.updated_at, later);
        assert_eq!(stored.name, connection.name);

        assert!(db.store.set_connection_active(org, connection.id, true, None, later).await.unwrap());
        let stored = db.store.get_connection(org, connection.id).await.unwrap().unwrap();
        assert!(stored.active);
        assert_eq!(stored.inactive_reason, None);
        assert!(!db.store.set_connection_active(org, ConnectionId::new_v7(), true, None, later).await.unwrap());
    }

    async fn another_organization_cannot_see_change_or_delete_a_connection(db: TestDb) {
        let owner = db.tenant().await;
        let other = db.tenant().await;
        let connection = db.connection(&owner.workspace).await;
        let intruder = other.organization.id;
        let store = &db.store;

        assert_eq!(store.get_connection(intruder, connection.id).await.unwrap(), None);
        assert!(store.list_connections(intruder, None, ALL).await.unwrap().is_empty());
        assert!(store.list_connections(intruder, Some(owner.workspace.id), ALL).await.unwrap().is_empty());
        let mut renamed = connection.clone();
        renamed.name = "Taken".into();
        assert_eq!(store.update_connection(intruder, &renamed).await.unwrap(), None);
        assert!(!store.set_connection_active(intruder, connection.id, false, None, now()).await.unwrap());
        assert_eq!(
            store.delete_connection(intruder, connection.id, true).await.unwrap(),
            ConnectionDeletion::NotFound
        );

        let unchanged = store.get_connection(owner.organization.id, connection.id).await.unwrap();
        assert_eq!(unchanged, Some(connection));
    }

    async fn a_connection_in_use_is_kept_unless_the_delete_is_forced(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let used = db.connection(&tenant.workspace).await;
        let spare = db.connection(&tenant.workspace).await;
        let first = db.rule(&used).await;
        let second = db.rule(&used).await;
        let unrelated = db.rule(&spare).await;

        let refused = db.store.delete_connection(org, used.id, false).await.unwrap();

        assert_eq!(refused, ConnectionDeletion::InUse { rules: 2 });
        assert_eq!(db.store.get_connection(org, used.id).await.unwrap(), Some(used.clone()));
        assert_eq!(db.store.get_rule(org, first.id).await.unwrap(), Some(first.clone()));

        let forced = db.store.delete_connection(org, used.id, true).await.unwrap();

        assert_eq!(forced, ConnectionDeletion::Deleted { rules_deleted: 2 });
        assert_eq!(db.store.get_connection(org, used.id).await.unwrap(), None);
        assert_eq!(db.store.get_rule(org, first.id).await.unwrap(), None);
        assert_eq!(db.store.get_rule(org, second.id).await.unwrap(), None);
        assert_eq!(db.store.get_rule(org, unrelated.id).await.unwrap(), Some(unrelated));
        assert_eq!(
            db.store.delete_connection(org, used.id, true).await.unwrap(),
            ConnectionDeletion::NotFound
        );
    }

    async fn an_unused_connection_is_deleted_without_force(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let connection = db.connection(&tenant.workspace).await;

        let deleted = db.store.delete_connection(org, connection.id, false).await.unwrap();

        assert_eq!(deleted, ConnectionDeletion::Deleted { rules_deleted: 0 });
        assert_eq!(db.store.get_connection(org, connection.id).await.unwrap(), None);
    }

    async fn delivery_history_outlives_a_deleted_rule_and_connection(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let connection = db.connection(&tenant.workspace).await;
        let rule = db.rule(&connection).await;
        let mut delivered = event(&tenant.workspace, 1);
        delivered.rule_events[0].rule_id = rule.id;
        delivered.rule_events[0].connection_id = connection.id;
        db.store.insert_events(std::slice::from_ref(&delivered)).await.unwrap();

        assert_eq!(db.store.delete_rule(org, rule.id).await.unwrap(), Some(rule.clone()));
        db.store.create_rule(&rule_for(&connection)).await.unwrap();
        let deleted = db.store.delete_connection(org, connection.id, true).await.unwrap();
        assert_eq!(deleted, ConnectionDeletion::Deleted { rules_deleted: 1 });

        let history = scalar(&db, "SELECT count(*) FROM rule_events WHERE rule_id = {id}", rule.id.0).await;
        assert_eq!(history, 1);
        assert!(db.store.get_event(org, delivered.id).await.unwrap().is_some());
    }
}
