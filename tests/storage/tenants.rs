//! Tenant creation and credential look-ups.

use handoff::backend_tests;
use handoff::storage::StorageError;
use handoff::storage::testing::{Tenant, TestDb, publishable_key_for};

use crate::support::execute;

backend_tests! {
    async fn a_database_is_empty_until_the_first_tenant_is_created(db: TestDb) {
        assert!(db.store.is_empty().await.unwrap());
        db.tenant().await;
        assert!(!db.store.is_empty().await.unwrap());
    }

    async fn a_created_tenant_is_found_by_its_keys_and_its_workspace(db: TestDb) {
        let tenant = db.tenant().await;
        let store = &db.store;

        let machine_key = store.find_machine_key(&tenant.machine_key.access_key).await.unwrap();
        assert_eq!(machine_key, Some(tenant.machine_key.clone()));
        let key = store
            .find_publishable_key(&tenant.publishable_key.public_key)
            .await
            .unwrap();
        assert_eq!(key, Some(tenant.publishable_key.clone()));
        let workspace = store
            .get_workspace(tenant.organization.id, tenant.workspace.id)
            .await
            .unwrap();
        assert_eq!(workspace, Some(tenant.workspace.clone()));
        let active = store
            .active_publishable_key(tenant.organization.id, tenant.workspace.id)
            .await
            .unwrap();
        assert_eq!(active, Some(tenant.publishable_key));
    }

    async fn unknown_keys_are_not_found(db: TestDb) {
        db.tenant().await;
        assert_eq!(db.store.find_machine_key("mk_unknown").await.unwrap(), None);
        assert_eq!(db.store.find_publishable_key("mesh_pub_a_b_c").await.unwrap(), None);
    }

    async fn a_revoked_machine_key_is_not_found(db: TestDb) {
        let tenant = db.tenant().await;
        let access_key = &tenant.machine_key.access_key;
        execute(
            &db,
            &format!("UPDATE machine_keys SET revoked_at = now() WHERE access_key = '{access_key}'"),
            &format!("UPDATE machine_keys SET revoked_at = 1 WHERE access_key = '{access_key}'"),
        )
        .await;
        assert_eq!(db.store.find_machine_key(access_key).await.unwrap(), None);
    }

    async fn tenant_creation_is_all_or_nothing(db: TestDb) {
        let first = db.tenant().await;
        let mut second = Tenant::new();
        // The second tenant's publishable key collides with the first's, after everything else
        // of the second tenant has been written in the transaction.
        second.publishable_key.public_key = first.publishable_key.public_key.clone();

        let err = db
            .store
            .create_tenant(
                &second.organization,
                &second.workspace,
                &second.machine_key,
                &second.publishable_key,
            )
            .await
            .unwrap_err();

        assert!(matches!(err, StorageError::Conflict("public_key")), "{err:?}");
        assert_eq!(db.store.find_machine_key(&second.machine_key.access_key).await.unwrap(), None);
        assert_eq!(
            db.store
                .get_workspace(second.organization.id, second.workspace.id)
                .await
                .unwrap(),
            None
        );
    }

    async fn rotation_activates_the_new_key_and_retires_the_old_one(db: TestDb) {
        let tenant = db.tenant().await;
        let (org, workspace) = (tenant.organization.id, tenant.workspace.id);
        let new = publishable_key_for(&tenant.workspace);

        assert!(db.store.rotate_publishable_key(org, workspace, &new).await.unwrap());

        assert_eq!(
            db.store.find_publishable_key(&tenant.publishable_key.public_key).await.unwrap(),
            None
        );
        assert_eq!(db.store.find_publishable_key(&new.public_key).await.unwrap(), Some(new.clone()));
        assert_eq!(db.store.active_publishable_key(org, workspace).await.unwrap(), Some(new.clone()));

        // Rotating again retires the key that was just made active.
        let newer = publishable_key_for(&tenant.workspace);
        assert!(db.store.rotate_publishable_key(org, workspace, &newer).await.unwrap());
        assert_eq!(db.store.find_publishable_key(&new.public_key).await.unwrap(), None);
        assert_eq!(db.store.active_publishable_key(org, workspace).await.unwrap(), Some(newer));
    }

    async fn rotating_another_organizations_workspace_changes_nothing(db: TestDb) {
        let victim = db.tenant().await;
        let intruder = db.tenant().await;
        let mut new = publishable_key_for(&victim.workspace);
        new.organization_id = intruder.organization.id;

        let rotated = db
            .store
            .rotate_publishable_key(intruder.organization.id, victim.workspace.id, &new)
            .await
            .unwrap();

        assert!(!rotated);
        assert_eq!(
            db.store
                .active_publishable_key(victim.organization.id, victim.workspace.id)
                .await
                .unwrap(),
            Some(victim.publishable_key)
        );
        assert_eq!(db.store.find_publishable_key(&new.public_key).await.unwrap(), None);
        assert_eq!(
            db.store
                .active_publishable_key(intruder.organization.id, victim.workspace.id)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_rotations_leave_exactly_one_active_key(db: TestDb) {
        let tenant = db.tenant().await;
        let mut tasks = tokio::task::JoinSet::new();
        let mut new_keys = Vec::new();
        for _ in 0..8 {
            let store = db.store.clone();
            let new = publishable_key_for(&tenant.workspace);
            new_keys.push(new.clone());
            let (org, workspace) = (tenant.organization.id, tenant.workspace.id);
            tasks.spawn(async move { store.rotate_publishable_key(org, workspace, &new).await });
        }
        while let Some(joined) = tasks.join_next().await {
            assert!(joined.unwrap().unwrap());
        }

        let mut active = 0;
        for key in &new_keys {
            if db.store.find_publishable_key(&key.public_key).await.unwrap().is_some() {
                active += 1;
            }
        }
        assert_eq!(active, 1);
        let current = db
            .store
            .active_publishable_key(tenant.organization.id, tenant.workspace.id)
            .await
            .unwrap()
            .expect("one key is active");
        assert!(new_keys.contains(&current));
    }
}
