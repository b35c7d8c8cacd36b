//! Workspaces: create, get, list pages, update, name uniqueness and tenant scoping.

use std::collections::HashSet;

use handoff::backend_tests;
use handoff::domain::{Workspace, WorkspaceId, now};
use handoff::storage::testing::{Tenant, TestDb, publishable_key_for};
use handoff::storage::{PageRequest, StorageError};

/// A new workspace named `name` in the tenant's organization (not stored).
fn workspace(tenant: &Tenant, name: &str) -> Workspace {
    let at = now();
    Workspace {
        id: WorkspaceId::new_v7(),
        organization_id: tenant.organization.id,
        name: name.into(),
        description: None,
        created_at: at,
        updated_at: at,
    }
}

async fn create(db: &TestDb, workspace: &Workspace) -> Result<(), StorageError> {
    db.store
        .create_workspace(workspace, &publishable_key_for(workspace))
        .await
}

backend_tests! {
    async fn a_created_workspace_is_read_back_equal_with_its_active_key(db: TestDb) {
        let tenant = db.tenant().await;
        let staging = workspace(&tenant, "Staging");
        let key = publishable_key_for(&staging);

        db.store.create_workspace(&staging, &key).await.unwrap();

        let org = tenant.organization.id;
        assert_eq!(db.store.get_workspace(org, staging.id).await.unwrap(), Some(staging.clone()));
        assert_eq!(db.store.active_publishable_key(org, staging.id).await.unwrap(), Some(key));
    }

    async fn another_organization_cannot_see_a_workspace(db: TestDb) {
        let owner = db.tenant().await;
        let other = db.tenant().await;
        let store = &db.store;

        assert_eq!(store.get_workspace(other.organization.id, owner.workspace.id).await.unwrap(), None);
        assert_eq!(
            store.active_publishable_key(other.organization.id, owner.workspace.id).await.unwrap(),
            None
        );
        let listed = store
            .list_workspaces(other.organization.id, PageRequest { limit: 50, before: None })
            .await
            .unwrap();
        assert_eq!(listed, vec![other.workspace]);
    }

    async fn workspace_pages_run_newest_first_without_gaps_or_duplicates(db: TestDb) {
        let tenant = db.tenant().await;
        db.tenant().await; // another organization's workspace must never show up
        let mut expected = vec![tenant.workspace.id];
        for i in 0..7 {
            let w = workspace(&tenant, &format!("Workspace {i}"));
            create(&db, &w).await.unwrap();
            expected.push(w.id);
        }
        expected.reverse();

        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut before = None;
        loop {
            let page = db
                .store
                .list_workspaces(tenant.organization.id, PageRequest { limit: 3, before })
                .await
                .unwrap();
            sizes.push(page.len());
            let Some(last) = page.last() else { break };
            before = Some(last.id.0);
            seen.extend(page.iter().map(|w| w.id));
        }

        assert_eq!(sizes, vec![3, 3, 2, 0]);
        assert_eq!(seen, expected);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 8);
    }

    async fn a_duplicate_workspace_name_is_a_conflict_whatever_its_case(db: TestDb) {
        let tenant = db.tenant().await;

        for name in ["Production", "production", "PRODUCTION"] {
            let err = create(&db, &workspace(&tenant, name)).await.unwrap_err();
            assert!(matches!(err, StorageError::Conflict("workspace_name")), "{name}: {err:?}");
        }
        // Unicode case folding too, identically on both backends.
        create(&db, &workspace(&tenant, "Équipe")).await.unwrap();
        let err = create(&db, &workspace(&tenant, "ÉQUIPE")).await.unwrap_err();
        assert!(matches!(err, StorageError::Conflict("workspace_name")), "{err:?}");
    }

    async fn another_organization_may_reuse_a_workspace_name(db: TestDb) {
        let first = db.tenant().await;
        let second = db.tenant().await; // also has a workspace named "Production"
        create(&db, &workspace(&first, "Shared")).await.unwrap();
        create(&db, &workspace(&second, "shared")).await.unwrap();
        assert_eq!(first.workspace.name, second.workspace.name);
    }

    async fn an_update_sets_name_description_and_updated_at(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let later = now() + chrono::TimeDelta::seconds(5);

        let updated = db
            .store
            .update_workspace(org, tenant.workspace.id, "Live", Some("Renamed"), later)
            .await
            .unwrap()
            .expect("the workspace exists");

        assert_eq!(updated.name, "Live");
        assert_eq!(updated.description.as_deref(), Some("Renamed"));
        assert_eq!(updated.updated_at, later);
        assert_eq!(updated.created_at, tenant.workspace.created_at);
        assert_eq!(db.store.get_workspace(org, tenant.workspace.id).await.unwrap(), Some(updated));

        let cleared = db
            .store
            .update_workspace(org, tenant.workspace.id, "live", None, later)
            .await
            .unwrap()
            .expect("renaming to another case of its own name is allowed");
        assert_eq!(cleared.description, None);
        assert_eq!(cleared.name, "live");
    }

    async fn renaming_onto_a_sibling_name_is_a_conflict(db: TestDb) {
        let tenant = db.tenant().await;
        let staging = workspace(&tenant, "Staging");
        create(&db, &staging).await.unwrap();

        let err = db
            .store
            .update_workspace(tenant.organization.id, staging.id, "PRODUCTION", None, now())
            .await
            .unwrap_err();

        assert!(matches!(err, StorageError::Conflict("workspace_name")), "{err:?}");
        let unchanged = db.store.get_workspace(tenant.organization.id, staging.id).await.unwrap();
        assert_eq!(unchanged, Some(staging));
    }

    async fn another_organization_cannot_update_a_workspace(db: TestDb) {
        let owner = db.tenant().await;
        let other = db.tenant().await;

        let result = db
            .store
            .update_workspace(other.organization.id, owner.workspace.id, "Taken", None, now())
            .await
            .unwrap();

        assert_eq!(result, None);
        let unchanged = db.store.get_workspace(owner.organization.id, owner.workspace.id).await.unwrap();
        assert_eq!(unchanged, Some(owner.workspace));
    }
}
