//! Path parsing and resolution: roots, segments, array indexes, missing values.

use serde_json::{Value, json};

use super::{sample_payload, view, view_without_resource_id};
use crate::rules::path::{Found, MAX_PATH_DEPTH, MAX_PATH_LEN, Path, PathError, Root};

#[test]
fn valid_paths_parse_to_their_root_and_keep_their_text() {
    let table = [
        ("event", Root::Event),
        ("resource", Root::Resource),
        ("resource_id", Root::ResourceId),
        ("payload", Root::Payload),
        ("payload.email", Root::Payload),
        ("payload.items.0.sku", Root::Payload),
        ("payload.first name", Root::Payload),
        ("payload.ünïcode.key", Root::Payload),
    ];
    for (text, root) in table {
        let path = Path::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(path.root(), root, "{text}");
        assert_eq!(path.as_str(), text);
        assert_eq!(path.to_string(), text);
        assert_eq!(serde_json::to_value(&path).unwrap(), json!(text));
    }
}

#[test]
fn invalid_paths_are_rejected_with_the_reason() {
    let too_long = format!("payload.{}", "a".repeat(MAX_PATH_LEN));
    let too_deep = format!("payload{}", ".a".repeat(MAX_PATH_DEPTH + 1));
    let table: Vec<(&str, PathError)> = vec![
        ("", PathError::Empty),
        ("payload.", PathError::EmptySegment),
        (".payload", PathError::EmptySegment),
        ("payload..email", PathError::EmptySegment),
        (".", PathError::EmptySegment),
        ("Payload.email", PathError::UnknownRoot("Payload".into())),
        ("body.email", PathError::UnknownRoot("body".into())),
        ("email", PathError::UnknownRoot("email".into())),
        (" payload.email", PathError::UnknownRoot(" payload".into())),
        ("event.name", PathError::NoFields("event")),
        ("resource.kind", PathError::NoFields("resource")),
        ("resource_id.0", PathError::NoFields("resource_id")),
        (too_long.as_str(), PathError::TooLong),
        (too_deep.as_str(), PathError::TooDeep),
    ];
    for (text, want) in table {
        assert_eq!(Path::parse(text), Err(want), "{text:?}");
    }
}

#[test]
fn a_path_at_the_depth_limit_is_accepted() {
    let deepest = format!("payload{}", ".a".repeat(MAX_PATH_DEPTH));
    assert!(Path::parse(&deepest).is_ok());
}

#[test]
fn paths_resolve_into_nested_objects_and_arrays() {
    let payload = sample_payload();
    let ev = view(&payload);
    let table: Vec<(&str, Option<Value>)> = vec![
        ("payload.email", Some(json!("ada@example.com"))),
        ("payload.user.plan.name", Some(json!("pro"))),
        (
            "payload.user.plan",
            Some(json!({"name": "pro", "seats": 10})),
        ),
        ("payload.items.0.sku", Some(json!("A-1"))),
        ("payload.items.1.qty", Some(json!(0))),
        ("payload.tags.3", Some(json!(true))),
        // A numeric segment is a key when the value is an object.
        ("payload.by_number.0", Some(json!("zero-key"))),
        // Null is found; it is not the same as missing.
        ("payload.nothing", Some(Value::Null)),
        ("payload", Some(payload.clone())),
        ("payload.missing", None),
        ("payload.user.plan.missing", None),
        ("payload.items.2.sku", None),
        // Only canonical integers index arrays.
        ("payload.items.00.sku", None),
        ("payload.items.01.sku", None),
        ("payload.items.+1.sku", None),
        ("payload.items.-1.sku", None),
        ("payload.items.sku", None),
        // Stepping into a scalar or null finds nothing.
        ("payload.email.length", None),
        ("payload.sequence_step.0", None),
        ("payload.nothing.x", None),
    ];
    for (text, want) in table {
        let path = Path::parse(text).unwrap();
        let got = path.resolve(&ev).map(|f| match f {
            Found::Json(v) => v.clone(),
            Found::Text(s) => panic!("{text}: a payload path found text {s:?}"),
        });
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn the_event_fields_resolve_to_text_and_a_missing_resource_id_to_nothing() {
    let payload = sample_payload();
    let with = view(&payload);
    let without = view_without_resource_id(&payload);
    let table = [
        (
            "event",
            Some(Found::Text("page.completed")),
            Some(Found::Text("page.completed")),
        ),
        (
            "resource",
            Some(Found::Text("onboarding_sequence")),
            Some(Found::Text("onboarding_sequence")),
        ),
        ("resource_id", Some(Found::Text("workspace-setup")), None),
    ];
    for (text, want_with, want_without) in table {
        let path = Path::parse(text).unwrap();
        assert_eq!(path.resolve(&with), want_with, "{text} with a resource id");
        assert_eq!(
            path.resolve(&without),
            want_without,
            "{text} without a resource id"
        );
    }
}

#[test]
fn a_payload_that_is_not_an_object_resolves_nothing_below_it() {
    for payload in [json!("text"), json!(5), Value::Null] {
        let ev = view(&payload);
        assert_eq!(
            Path::parse("payload.a").unwrap().resolve(&ev),
            None,
            "{payload}"
        );
    }
}
