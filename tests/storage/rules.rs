//! Rules: create, get, filtered list pages, update, delete, the workspace load for the rule cache,
//! and tenant scoping.

use handoff::backend_tests;
use handoff::domain::{Rule, RuleFilter, RuleId, Workspace, WorkspaceId, now};
use handoff::storage::testing::{Tenant, TestDb, publishable_key_for, rule_for};
use handoff::storage::{PageRequest, StorageError};
use serde_json::json;

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

fn ids(rules: &[Rule]) -> Vec<RuleId> {
    rules.iter().map(|r| r.id).collect()
}

/// Newest first, as the store lists.
fn newest_first<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Vec<RuleId> {
    let mut ids: Vec<RuleId> = rules.into_iter().map(|r| r.id).collect();
    ids.sort();
    ids.reverse();
    ids
}

backend_tests! {
    async fn a_created_rule_is_read_back_equal(db: TestDb) {
        let tenant = db.tenant().await;
        let connection = db.connection(&tenant.workspace).await;
        let mut detailed = rule_for(&connection);
        detailed.resource_id = Some("workspace-setup".into());
        detailed.metadata = json!({"action": "add_to_list", "id": "2", "nested": {"n": 1.5, "list": [1, "two", null]}});
        detailed.conditions = json!([
            {"path": "payload.page_id", "op": "eq", "value": "page_connect-crm"},
            {"path": "payload.step", "op": "gte", "value": 3}
        ]);
        detailed.active = false;
        detailed.hidden = true;
        let mut bare = rule_for(&connection);
        bare.resource = None;

        for rule in [&detailed, &bare] {
            db.store.create_rule(rule).await.unwrap();
            let stored = db.store.get_rule(tenant.organization.id, rule.id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(rule));
        }
    }

    async fn a_rule_whose_connection_is_in_another_workspace_is_refused(db: TestDb) {
        let tenant = db.tenant().await;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let elsewhere = db.connection(&staging).await;
        let mut rule = rule_for(&elsewhere);
        rule.workspace_id = tenant.workspace.id;

        let err = db.store.create_rule(&rule).await.unwrap_err();

        assert!(matches!(err, StorageError::NotFound("connection")), "{err:?}");
        assert_eq!(db.store.get_rule(tenant.organization.id, rule.id).await.unwrap(), None);

        // Another organization's connection is never usable either.
        let other = db.tenant().await;
        let foreign = db.connection(&other.workspace).await;
        let mut rule = rule_for(&foreign);
        rule.organization_id = tenant.organization.id;
        rule.workspace_id = tenant.workspace.id;
        let err = db.store.create_rule(&rule).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound("connection")), "{err:?}");
    }

    async fn rules_are_listed_newest_first_by_every_filter(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let production = db.connection(&tenant.workspace).await;
        let staged = db.connection(&staging).await;
        let other = db.tenant().await;
        let foreign = db.connection(&other.workspace).await;
        db.rule(&foreign).await; // same event and resource, never listed for `tenant`

        let mut rules = Vec::new();
        for (connection, event, resource, resource_id) in [
            (&production, "page.completed", Some("onboarding_sequence"), Some("workspace-setup")),
            (&production, "page.completed", Some("onboarding_sequence"), None),
            (&production, "page.completed", None, None),
            (&production, "user.signed_up", None, None),
            (&staged, "page.completed", Some("onboarding_sequence"), Some("workspace-setup")),
            (&staged, "page.completed", Some("checkout"), Some("workspace-setup")),
        ] {
            let mut rule = rule_for(connection);
            rule.event = event.into();
            rule.resource = resource.map(Into::into);
            rule.resource_id = resource_id.map(Into::into);
            db.store.create_rule(&rule).await.unwrap();
            rules.push(rule);
        }
        let filter = |workspace: Option<WorkspaceId>, event: Option<&str>, resource: Option<&str>, resource_id: Option<&str>| {
            RuleFilter {
                workspace,
                event: event.map(Into::into),
                resource: resource.map(Into::into),
                resource_id: resource_id.map(Into::into),
            }
        };
        let cases = [
            filter(None, None, None, None),
            filter(Some(tenant.workspace.id), None, None, None),
            filter(Some(staging.id), None, None, None),
            filter(None, Some("page.completed"), None, None),
            filter(None, Some("user.signed_up"), None, None),
            filter(None, None, Some("onboarding_sequence"), None),
            filter(None, None, None, Some("workspace-setup")),
            filter(Some(staging.id), Some("page.completed"), Some("checkout"), Some("workspace-setup")),
            filter(Some(tenant.workspace.id), Some("page.completed"), Some("onboarding_sequence"), None),
            filter(None, Some("no.such.event"), None, None),
        ];

        for case in &cases {
            let expected = newest_first(rules.iter().filter(|r| {
                case.workspace.is_none_or(|w| r.workspace_id == w)
                    && case.event.as_ref().is_none_or(|e| &r.event == e)
                    && case.resource.as_ref().is_none_or(|x| r.resource.as_ref() == Some(x))
                    && case.resource_id.as_ref().is_none_or(|x| r.resource_id.as_ref() == Some(x))
            }));
            let listed = db.store.list_rules(org, case, ALL).await.unwrap();
            assert_eq!(ids(&listed), expected, "{case:?}");
        }
        // The cases are not vacuous.
        assert_eq!(db.store.list_rules(org, &cases[0], ALL).await.unwrap().len(), 6);
        assert_eq!(db.store.list_rules(org, &cases[5], ALL).await.unwrap().len(), 3);
        assert_eq!(db.store.list_rules(org, &cases[8], ALL).await.unwrap().len(), 2);
    }

    async fn rule_pages_run_newest_first_without_gaps_or_duplicates(db: TestDb) {
        let tenant = db.tenant().await;
        let connection = db.connection(&tenant.workspace).await;
        let mut expected = Vec::new();
        for _ in 0..7 {
            expected.push(db.rule(&connection).await.id);
        }
        expected.reverse();
        let by_workspace = RuleFilter { workspace: Some(tenant.workspace.id), ..RuleFilter::default() };

        for filter in [RuleFilter::default(), by_workspace] {
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            let mut before = None;
            loop {
                let page = db
                    .store
                    .list_rules(tenant.organization.id, &filter, PageRequest { limit: 3, before })
                    .await
                    .unwrap();
                sizes.push(page.len());
                let Some(last) = page.last() else { break };
                before = Some(last.id.0);
                seen.extend(ids(&page));
            }
            assert_eq!(sizes, vec![3, 3, 1, 0], "{filter:?}");
            assert_eq!(seen, expected, "{filter:?}");
        }
    }

    async fn an_update_replaces_the_rule_and_keeps_its_identity(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let first = db.connection(&tenant.workspace).await;
        let second = db.connection(&tenant.workspace).await;
        let original = db.rule(&first).await;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let later = now() + chrono::TimeDelta::seconds(5);
        let mut changed = original.clone();
        changed.connection_id = second.id;
        changed.integration_type = "activecampaign-v2".into();
        changed.event = "user.signed_up".into();
        changed.resource = None;
        changed.resource_id = Some("abc".into());
        changed.metadata = json!({"action": "add_to_list", "id": "7"});
        changed.conditions = json!([{"path": "payload.plan", "op": "in", "value": ["pro", "team"]}]);
        changed.active = false;
        changed.hidden = true;
        changed.updated_at = later;
        let mut request = changed.clone();
        request.workspace_id = staging.id;
        request.created_by = "someone".into();
        request.created_at = later;

        let updated = db.store.update_rule(org, &request).await.unwrap();

        assert_eq!(updated.as_ref(), Some(&changed));
        assert_eq!(db.store.get_rule(org, original.id).await.unwrap(), Some(changed));
    }

    async fn an_update_onto_a_connection_of_another_workspace_is_refused(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let connection = db.connection(&tenant.workspace).await;
        let rule = db.rule(&connection).await;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let elsewhere = db.connection(&staging).await;
        let mut moved = rule.clone();
        moved.connection_id = elsewhere.id;

        let err = db.store.update_rule(org, &moved).await.unwrap_err();

        assert!(matches!(err, StorageError::NotFound("connection")), "{err:?}");
        assert_eq!(db.store.get_rule(org, rule.id).await.unwrap(), Some(rule));
    }

    async fn a_deleted_rule_is_returned_once_and_gone(db: TestDb) {
        let tenant = db.tenant().await;
        let org = tenant.organization.id;
        let connection = db.connection(&tenant.workspace).await;
        let rule = db.rule(&connection).await;
        let kept = db.rule(&connection).await;

        assert_eq!(db.store.delete_rule(org, rule.id).await.unwrap(), Some(rule.clone()));
        assert_eq!(db.store.delete_rule(org, rule.id).await.unwrap(), None);
        assert_eq!(db.store.get_rule(org, rule.id).await.unwrap(), None);
        assert_eq!(db.store.get_rule(org, kept.id).await.unwrap(), Some(kept));
    }

    async fn another_organization_cannot_see_change_or_delete_a_rule(db: TestDb) {
        let owner = db.tenant().await;
        let other = db.tenant().await;
        let connection = db.connection(&owner.workspace).await;
        let rule = db.rule(&connection).await;
        let intruder = other.organization.id;
        let store = &db.store;

        assert_eq!(store.get_rule(intruder, rule.id).await.unwrap(), None);
        assert!(store.list_rules(intruder, &RuleFilter::default(), ALL).await.unwrap().is_empty());
        let by_workspace = RuleFilter { workspace: Some(owner.workspace.id), ..RuleFilter::default() };
        assert!(store.list_rules(intruder, &by_workspace, ALL).await.unwrap().is_empty());
        let mut changed = rule.clone();
        changed.event = "taken.over".into();
        assert_eq!(store.update_rule(intruder, &changed).await.unwrap(), None);
        assert_eq!(store.delete_rule(intruder, rule.id).await.unwrap(), None);

        assert_eq!(store.get_rule(owner.organization.id, rule.id).await.unwrap(), Some(rule));
    }

    async fn a_workspace_loads_all_its_rules_oldest_first_and_no_others(db: TestDb) {
        let tenant = db.tenant().await;
        let connection = db.connection(&tenant.workspace).await;
        let staging = sibling_workspace(&db, &tenant, "Staging").await;
        let staged = db.connection(&staging).await;
        db.rule(&staged).await;
        let active = db.rule(&connection).await;
        let mut inactive = rule_for(&connection);
        inactive.active = false;
        db.store.create_rule(&inactive).await.unwrap();

        let loaded = db.store.workspace_rules(tenant.workspace.id).await.unwrap();

        assert_eq!(loaded, vec![active, inactive]);
        assert!(db.store.workspace_rules(WorkspaceId::new_v7()).await.unwrap().is_empty());
    }
}
