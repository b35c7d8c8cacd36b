//! Matching on event name, resource, resource id, conditions and `active`.

use serde_json::{Value, json};

use super::{sample_payload, view, view_without_resource_id};
use crate::domain::{ConnectionId, RuleId, WorkspaceId};
use crate::rules::{Action, CompiledRule, matching, parse_conditions};

fn rule(
    event: &str,
    resource: Option<&str>,
    resource_id: Option<&str>,
    conditions: Value,
) -> CompiledRule {
    CompiledRule {
        id: RuleId::new_v7(),
        workspace_id: WorkspaceId::new_v7(),
        connection_id: ConnectionId::new_v7(),
        event: event.into(),
        resource: resource.map(Into::into),
        resource_id: resource_id.map(Into::into),
        conditions: parse_conditions(&conditions).unwrap(),
        action: Action::SyncContact,
        active: true,
    }
}

#[test]
fn rules_match_on_event_resource_resource_id_and_conditions() {
    let step_is_3 = json!([{"path": "payload.sequence_step", "op": "eq", "value": 3}]);
    let step_is_4 = json!([{"path": "payload.sequence_step", "op": "eq", "value": 4}]);
    let both_hold = json!([
        {"path": "payload.sequence_step", "op": "gte", "value": 2},
        {"path": "payload.email", "op": "contains", "value": "@example.com"}
    ]);
    let one_fails = json!([
        {"path": "payload.sequence_step", "op": "gte", "value": 2},
        {"path": "payload.email", "op": "contains", "value": "@other.com"}
    ]);
    // (case, rule, matches the event with resource_id, matches the event without)
    let table = [
        (
            "the event name",
            rule("page.completed", None, None, json!([])),
            true,
            true,
        ),
        (
            "another event name",
            rule("page.viewed", None, None, json!([])),
            false,
            false,
        ),
        (
            "event names are case-sensitive",
            rule("Page.Completed", None, None, json!([])),
            false,
            false,
        ),
        (
            "an equal resource",
            rule(
                "page.completed",
                Some("onboarding_sequence"),
                None,
                json!([]),
            ),
            true,
            true,
        ),
        (
            "another resource",
            rule("page.completed", Some("global"), None, json!([])),
            false,
            false,
        ),
        (
            "an equal resource id",
            rule("page.completed", None, Some("workspace-setup"), json!([])),
            true,
            false,
        ),
        (
            "another resource id",
            rule("page.completed", None, Some("billing"), json!([])),
            false,
            false,
        ),
        (
            "resource and resource id",
            rule(
                "page.completed",
                Some("onboarding_sequence"),
                Some("workspace-setup"),
                json!([]),
            ),
            true,
            false,
        ),
        (
            "a condition that holds",
            rule("page.completed", None, None, step_is_3),
            true,
            true,
        ),
        (
            "a condition that fails",
            rule("page.completed", None, None, step_is_4),
            false,
            false,
        ),
        (
            "all conditions hold",
            rule("page.completed", None, None, both_hold),
            true,
            true,
        ),
        (
            "one condition fails",
            rule("page.completed", None, None, one_fails),
            false,
            false,
        ),
        (
            "a condition on resource_id",
            rule(
                "page.completed",
                None,
                None,
                json!([{"path": "resource_id", "op": "exists"}]),
            ),
            true,
            false,
        ),
    ];
    let payload = sample_payload();
    for (case, rule, with_id, without_id) in table {
        assert_eq!(
            rule.matches(&view(&payload)),
            with_id,
            "{case}, with a resource id"
        );
        assert_eq!(
            rule.matches(&view_without_resource_id(&payload)),
            without_id,
            "{case}, without"
        );
    }
}

#[test]
fn matching_yields_only_active_matching_rules_in_order() {
    let mut inactive = rule("page.completed", None, None, json!([]));
    inactive.active = false;
    let rules = vec![
        rule("page.completed", None, None, json!([])),
        rule("page.viewed", None, None, json!([])),
        inactive,
        rule(
            "page.completed",
            Some("onboarding_sequence"),
            None,
            json!([]),
        ),
        rule(
            "page.completed",
            None,
            None,
            json!([{"path": "payload.done", "op": "eq", "value": false}]),
        ),
    ];
    let payload = sample_payload();
    let ev = view(&payload);
    let got: Vec<RuleId> = matching(&rules, &ev).map(|r| r.id).collect();
    assert_eq!(got, vec![rules[0].id, rules[3].id]);
    // `matches` itself ignores `active`, so a test send can ask about an inactive rule.
    assert!(rules[2].matches(&ev));
}

#[test]
fn matching_nothing_yields_nothing() {
    let payload = sample_payload();
    assert_eq!(matching(&[], &view(&payload)).count(), 0);
    let rules = [rule("signup", None, None, json!([]))];
    assert_eq!(matching(&rules, &view(&payload)).count(), 0);
}
