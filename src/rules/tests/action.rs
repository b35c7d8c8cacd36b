//! `metadata` parsing, its per-field errors, serialization back and target resolution.

use serde_json::{Value, json};

use super::{ErrorCase, assert_field_errors, sample_payload, view};
use crate::rules::action::{Action, ResolvedTarget, Target, parse_metadata};
use crate::rules::template::{Template, TemplateError};

fn template(text: &str) -> Target {
    Target::Template(Template::parse(text).unwrap())
}

#[test]
fn valid_metadata_parses_to_its_action() {
    let table = [
        (
            json!({"action": "add_tag", "id": "64"}),
            Action::AddTag(Target::Id("64".into())),
        ),
        (
            json!({"action": "add_tag", "id": 64}),
            Action::AddTag(Target::Id("64".into())),
        ),
        (
            json!({"action": "add_tag", "id": 0}),
            Action::AddTag(Target::Id("0".into())),
        ),
        (
            json!({"action": "remove_tag", "id": "tag-abc"}),
            Action::RemoveTag(Target::Id("tag-abc".into())),
        ),
        (
            json!({"action": "add_tag", "tag": "onboarding-step-{{payload.sequence_step}}-done"}),
            Action::AddTag(template("onboarding-step-{{payload.sequence_step}}-done")),
        ),
        (
            json!({"action": "remove_tag", "tag": "trial"}),
            Action::RemoveTag(template("trial")),
        ),
        (
            json!({"action": "add_to_list", "id": "2"}),
            Action::AddToList(Target::Id("2".into())),
        ),
        (
            json!({"action": "add_to_list", "list": "{{payload.plan}}"}),
            Action::AddToList(template("{{payload.plan}}")),
        ),
        (
            json!({"action": "remove_from_list", "id": 7}),
            Action::RemoveFromList(Target::Id("7".into())),
        ),
        (
            json!({"action": "remove_from_list", "list": "Onboarding"}),
            Action::RemoveFromList(template("Onboarding")),
        ),
        (json!({"action": "sync_contact"}), Action::SyncContact),
        // Null fields count as absent; unknown fields are ignored.
        (
            json!({"action": "sync_contact", "id": null, "tag": null}),
            Action::SyncContact,
        ),
        (
            json!({"action": "add_tag", "id": "64", "tag": null, "list": null, "name": "x"}),
            Action::AddTag(Target::Id("64".into())),
        ),
    ];
    for (sent, want) in table {
        assert_eq!(parse_metadata(&sent), Ok(want), "{sent}");
    }
}

#[test]
fn actions_serialize_back_to_metadata() {
    let table = [
        (
            json!({"action": "add_tag", "id": 64}),
            json!({"action": "add_tag", "id": "64"}),
        ),
        (
            json!({"action": "remove_tag", "id": "64"}),
            json!({"action": "remove_tag", "id": "64"}),
        ),
        (
            json!({"action": "add_tag", "tag": "step-{{ payload.n }}", "list": null}),
            json!({"action": "add_tag", "tag": "step-{{ payload.n }}"}),
        ),
        (
            json!({"action": "add_to_list", "list": "{{payload.plan}}"}),
            json!({"action": "add_to_list", "list": "{{payload.plan}}"}),
        ),
        (
            json!({"action": "remove_from_list", "id": "3"}),
            json!({"action": "remove_from_list", "id": "3"}),
        ),
        (
            json!({"action": "sync_contact", "extra": true}),
            json!({"action": "sync_contact"}),
        ),
    ];
    for (sent, want) in table {
        let action = parse_metadata(&sent).unwrap();
        let back = serde_json::to_value(&action).unwrap();
        assert_eq!(back, want, "{sent}");
        // What we return parses to the same action.
        assert_eq!(parse_metadata(&back), Ok(action));
    }
}

#[test]
fn each_invalid_metadata_field_is_named() {
    let long_id = "9".repeat(65);
    let table: Vec<ErrorCase> = vec![
        (
            "no metadata",
            Value::Null,
            vec![("metadata", "is required")],
        ),
        (
            "a string",
            json!("add_tag"),
            vec![("metadata", "must be an object")],
        ),
        (
            "an array",
            json!([]),
            vec![("metadata", "must be an object")],
        ),
        (
            "no action",
            json!({"id": "1"}),
            vec![("metadata.action", "is required")],
        ),
        (
            "a null action",
            json!({"action": null, "id": "1"}),
            vec![("metadata.action", "is required")],
        ),
        (
            "an unknown action",
            json!({"action": "send_email", "id": "1"}),
            vec![(
                "metadata.action",
                "must be one of add_tag, remove_tag, add_to_list, remove_from_list, sync_contact",
            )],
        ),
        (
            "a number action",
            json!({"action": 5}),
            vec![("metadata.action", "must be one of")],
        ),
        (
            "an upper-case action",
            json!({"action": "ADD_TAG", "id": "1"}),
            vec![("metadata.action", "must be one of")],
        ),
        (
            "add_tag without a target",
            json!({"action": "add_tag"}),
            vec![(
                "metadata.id",
                "is required for add_tag (or give a name template in metadata.tag)",
            )],
        ),
        (
            "add_to_list without a target",
            json!({"action": "add_to_list"}),
            vec![("metadata.id", "or give a name template in metadata.list")],
        ),
        (
            "both id and tag",
            json!({"action": "add_tag", "id": "1", "tag": "x"}),
            vec![(
                "metadata.id",
                "either metadata.id or metadata.tag, not both",
            )],
        ),
        (
            "both id and list",
            json!({"action": "remove_from_list", "id": 1, "list": "x"}),
            vec![("metadata.id", "not both")],
        ),
        (
            "a list on a tag action",
            json!({"action": "add_tag", "list": "x"}),
            vec![
                ("metadata.list", "is not used by add_tag"),
                ("metadata.id", "is required for add_tag"),
            ],
        ),
        (
            "a tag on a list action",
            json!({"action": "add_to_list", "id": "1", "tag": "x"}),
            vec![("metadata.tag", "is not used by add_to_list")],
        ),
        (
            "targets on sync_contact",
            json!({"action": "sync_contact", "id": "1", "list": "x"}),
            vec![
                ("metadata.id", "is not used by sync_contact"),
                ("metadata.list", "is not used by sync_contact"),
            ],
        ),
        (
            "an empty id",
            json!({"action": "add_tag", "id": ""}),
            vec![("metadata.id", "must not be blank")],
        ),
        (
            "a blank id",
            json!({"action": "add_tag", "id": "  "}),
            vec![("metadata.id", "must not be blank")],
        ),
        (
            "a negative id",
            json!({"action": "add_tag", "id": -1}),
            vec![("metadata.id", "must be a string or a non-negative integer")],
        ),
        (
            "a fractional id",
            json!({"action": "add_tag", "id": 1.5}),
            vec![("metadata.id", "non-negative integer")],
        ),
        (
            "a boolean id",
            json!({"action": "add_tag", "id": true}),
            vec![("metadata.id", "must be a string")],
        ),
        (
            "an object id",
            json!({"action": "add_to_list", "id": {"id": 1}}),
            vec![("metadata.id", "must be a string")],
        ),
        (
            "a long id",
            json!({"action": "add_tag", "id": long_id}),
            vec![("metadata.id", "at most 64 characters")],
        ),
        (
            "a number tag",
            json!({"action": "add_tag", "tag": 5}),
            vec![("metadata.tag", "must be a string")],
        ),
        (
            "a blank tag",
            json!({"action": "add_tag", "tag": " "}),
            vec![("metadata.tag", "must not be blank")],
        ),
        (
            "a single-brace tag",
            json!({"action": "add_tag", "tag": "step-{payload.n}"}),
            vec![("metadata.tag", "unbalanced brace at character 6")],
        ),
        (
            "a tag with a bad path",
            json!({"action": "remove_tag", "tag": "{{ body.n }}"}),
            vec![("metadata.tag", "bad path `body.n`")],
        ),
        (
            "an unclosed list",
            json!({"action": "add_to_list", "list": "{{payload.plan"}),
            vec![("metadata.list", "unbalanced brace at character 1")],
        ),
        (
            "everything wrong at once",
            json!({"action": "bogus", "id": {}, "tag": "{", "list": 3}),
            vec![
                ("metadata.action", "must be one of"),
                ("metadata.id", "must be a string"),
                ("metadata.tag", "unbalanced brace"),
                ("metadata.list", "must be a string"),
            ],
        ),
    ];
    for (case, sent, expected) in table {
        let errors = parse_metadata(&sent).expect_err(case);
        assert_field_errors(case, &errors, &expected);
    }
}

#[test]
fn targets_resolve_to_an_id_or_a_rendered_name() {
    let payload = sample_payload();
    let ev = view(&payload);
    let table = [
        (Target::Id("64".into()), Ok(ResolvedTarget::Id("64".into()))),
        (
            template("onboarding-step-{{payload.sequence_step}}-done"),
            Ok(ResolvedTarget::Name("onboarding-step-3-done".into())),
        ),
        (
            template("plan-{{payload.plan}}"),
            Err(TemplateError::Missing {
                path: "payload.plan".into(),
            }),
        ),
    ];
    for (target, want) in table {
        assert_eq!(target.resolve(&ev), want, "{target:?}");
    }
}

#[test]
fn action_names_and_targets_are_exposed() {
    let id = Target::Id("1".into());
    let table = [
        (Action::AddTag(id.clone()), "add_tag", true),
        (Action::RemoveTag(id.clone()), "remove_tag", true),
        (Action::AddToList(id.clone()), "add_to_list", true),
        (Action::RemoveFromList(id.clone()), "remove_from_list", true),
        (Action::SyncContact, "sync_contact", false),
    ];
    for (action, name, has_target) in table {
        assert_eq!(action.name(), name);
        assert_eq!(action.target().is_some(), has_target, "{name}");
    }
}
