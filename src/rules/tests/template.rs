//! Template parsing (positions of errors) and rendering of each value type.

use serde_json::json;

use super::{sample_payload, view, view_without_resource_id};
use crate::rules::path::PathError;
use crate::rules::template::{MAX_TEMPLATE_LEN, Template, TemplateError, TemplateParseError};

#[test]
fn valid_templates_parse_and_keep_their_text() {
    let table = [
        (
            "onboarding-step-{{payload.sequence_step}}-done",
            vec!["payload.sequence_step"],
        ),
        ("{{ payload.email }}", vec!["payload.email"]),
        ("{{payload.email }}", vec!["payload.email"]),
        ("{{   payload.email}}", vec!["payload.email"]),
        ("{{payload.a}}{{payload.b}}", vec!["payload.a", "payload.b"]),
        (
            "{{event}}:{{resource}}/{{resource_id}}",
            vec!["event", "resource", "resource_id"],
        ),
        ("static-tag", vec![]),
        (
            "étape-{{ payload.items.0.sku }}",
            vec!["payload.items.0.sku"],
        ),
    ];
    for (text, fields) in table {
        let t = Template::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.as_str(), text);
        assert_eq!(t.to_string(), text);
        assert_eq!(serde_json::to_value(&t).unwrap(), json!(text));
        let got: Vec<&str> = t.fields().map(|p| p.as_str()).collect();
        assert_eq!(got, fields, "{text}");
    }
}

#[test]
fn malformed_templates_are_rejected_with_the_position() {
    let too_long = "a".repeat(MAX_TEMPLATE_LEN + 1);
    let bad_path = |at, path: &str, reason| TemplateParseError::BadPath {
        at,
        path: path.into(),
        reason,
    };
    let table: Vec<(&str, TemplateParseError)> = vec![
        ("", TemplateParseError::Blank),
        ("   ", TemplateParseError::Blank),
        (too_long.as_str(), TemplateParseError::TooLong),
        ("step-{{payload.n", TemplateParseError::Unbalanced { at: 6 }),
        ("step-{payload.n}", TemplateParseError::Unbalanced { at: 6 }),
        ("step-}}", TemplateParseError::Unbalanced { at: 6 }),
        ("step}", TemplateParseError::Unbalanced { at: 5 }),
        ("{{{payload.n}}}", TemplateParseError::Unbalanced { at: 3 }),
        ("{{payload.n}}}", TemplateParseError::Unbalanced { at: 14 }),
        ("{{payload.n}", TemplateParseError::Unbalanced { at: 1 }),
        ("{{pay{load}}", TemplateParseError::Unbalanced { at: 6 }),
        // Positions count characters, not bytes.
        ("été-{", TemplateParseError::Unbalanced { at: 5 }),
        ("{{}}", TemplateParseError::EmptyPlaceholder { at: 1 }),
        ("x-{{   }}", TemplateParseError::EmptyPlaceholder { at: 3 }),
        (
            "{{ body.n }}",
            bad_path(1, "body.n", PathError::UnknownRoot("body".into())),
        ),
        (
            "a-{{payload..n}}",
            bad_path(3, "payload..n", PathError::EmptySegment),
        ),
        (
            "{{payload.}}",
            bad_path(1, "payload.", PathError::EmptySegment),
        ),
        (
            "{{event.name}}",
            bad_path(1, "event.name", PathError::NoFields("event")),
        ),
    ];
    for (text, want) in table {
        assert_eq!(Template::parse(text), Err(want), "{text:?}");
    }
}

#[test]
fn parse_errors_read_as_a_phrase_after_the_field_name() {
    let e = Template::parse("step-{payload.n}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "has an unbalanced brace at character 6; write placeholders as {{ payload.field }}"
    );
    let e = Template::parse("{{ body.n }}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "has a bad path `body.n` at character 1: it starts with `body`; \
         a path starts with event, resource, resource_id or payload"
    );
}

#[test]
fn templates_render_present_fields_by_type() {
    let payload = sample_payload();
    let ev = view(&payload);
    let table = [
        (
            "onboarding-step-{{payload.sequence_step}}-done",
            "onboarding-step-3-done",
        ),
        ("{{ payload.email }}", "ada@example.com"),
        ("{{payload.text_three}}", "3"),
        ("score-{{payload.score}}", "score-2.5"),
        // A float keeps its JSON form; only integers print without a fraction.
        ("{{payload.whole_float}}", "3.0"),
        ("{{payload.neg}}", "-4"),
        ("{{payload.big}}", "18446744073709551615"),
        ("{{payload.done}}/{{payload.off}}", "true/false"),
        (
            "{{payload.user.plan.name}}-{{payload.user.plan.seats}}",
            "pro-10",
        ),
        ("{{payload.items.1.sku}}", "B-2"),
        ("{{payload.tags.0}}", "vip"),
        ("{{payload.by_number.0}}", "zero-key"),
        (
            "{{event}}|{{resource}}|{{resource_id}}",
            "page.completed|onboarding_sequence|workspace-setup",
        ),
        ("x-{{payload.empty}}", "x-"),
        ("static", "static"),
    ];
    for (text, want) in table {
        let t = Template::parse(text).unwrap();
        assert_eq!(t.render(&ev).as_deref(), Ok(want), "{text}");
    }
}

#[test]
fn templates_refuse_missing_null_and_structured_fields_naming_the_path() {
    let payload = sample_payload();
    let ev = view(&payload);
    let missing = |p: &str| TemplateError::Missing { path: p.into() };
    let table = [
        (
            "step-{{payload.sequence}}-done",
            missing("payload.sequence"),
        ),
        ("{{payload.items.5.sku}}", missing("payload.items.5.sku")),
        ("{{payload.email.x}}", missing("payload.email.x")),
        (
            "{{payload.nothing}}",
            TemplateError::Null {
                path: "payload.nothing".into(),
            },
        ),
        (
            "{{payload.user}}",
            TemplateError::NotScalar {
                path: "payload.user".into(),
                kind: "an object",
            },
        ),
        (
            "{{payload.tags}}",
            TemplateError::NotScalar {
                path: "payload.tags".into(),
                kind: "an array",
            },
        ),
        // The first field that fails is the one named.
        ("{{payload.a}}-{{payload.b}}", missing("payload.a")),
        ("{{payload.email}}-{{payload.b}}", missing("payload.b")),
        // Never an empty name.
        ("{{payload.empty}}", TemplateError::Blank),
    ];
    for (text, want) in table {
        let t = Template::parse(text).unwrap();
        assert_eq!(t.render(&ev), Err(want), "{text}");
    }
}

#[test]
fn a_missing_resource_id_is_a_template_error() {
    let payload = sample_payload();
    let t = Template::parse("{{resource_id}}").unwrap();
    let err = t.render(&view_without_resource_id(&payload)).unwrap_err();
    assert_eq!(err.path(), Some("resource_id"));
}

#[test]
fn template_errors_name_the_path_in_their_message() {
    let table = [
        (
            TemplateError::Missing {
                path: "payload.step".into(),
            },
            "template field payload.step is missing from the event",
        ),
        (
            TemplateError::Null {
                path: "payload.step".into(),
            },
            "template field payload.step is null",
        ),
        (
            TemplateError::NotScalar {
                path: "payload.step".into(),
                kind: "an array",
            },
            "template field payload.step is an array, not text, a number or a boolean",
        ),
        (TemplateError::Blank, "template rendered to a blank name"),
    ];
    for (err, msg) in table {
        assert_eq!(err.to_string(), msg);
    }
}

#[test]
fn length_limits_count_characters_not_bytes() {
    let at_limit = "é".repeat(MAX_TEMPLATE_LEN);
    assert!(Template::parse(&at_limit).is_ok());
    let over = "é".repeat(MAX_TEMPLATE_LEN + 1);
    assert_eq!(Template::parse(&over), Err(TemplateParseError::TooLong));
}
