//! Table-driven tests of the rule engine, one file per part. Each table row carries what it tests, so
//! a failure names the row.

mod action;
mod condition;
mod condition_parse;
mod matching;
mod path;
mod template;

use serde_json::{Value, json};

use super::{EventView, FieldError};

/// One payload for every lookup table: scalars of each type, null, nesting, arrays and an object with
/// a numeric key.
fn sample_payload() -> Value {
    json!({
        "email": "ada@example.com",
        "sequence_step": 3,
        "text_three": "3",
        "score": 2.5,
        "whole_float": 3.0,
        "big": 18446744073709551615u64,
        "neg": -4,
        "precise": 9007199254740993u64,
        "done": true,
        "off": false,
        "nothing": null,
        "empty": "",
        "tags": ["vip", "beta", 7, true],
        "user": {"plan": {"name": "pro", "seats": 10}},
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 0}],
        "at": "2026-03-21T15:06:00Z",
        "by_number": {"0": "zero-key"}
    })
}

/// The event every table looks at, over the given payload.
fn view(payload: &Value) -> EventView<'_> {
    EventView {
        event: "page.completed",
        resource: "onboarding_sequence",
        resource_id: Some("workspace-setup"),
        payload,
    }
}

/// The same event without a resource id.
fn view_without_resource_id(payload: &Value) -> EventView<'_> {
    EventView {
        resource_id: None,
        ..view(payload)
    }
}

/// A table row of invalid input: what it is, what is sent, and the `(param, message fragment)` pairs
/// expected back.
type ErrorCase = (&'static str, Value, Vec<(&'static str, &'static str)>);

/// Asserts that `errors` are exactly the expected params, in order, each message containing its
/// expected fragment.
#[track_caller]
fn assert_field_errors(case: &str, errors: &[FieldError], expected: &[(&str, &str)]) {
    let params: Vec<&str> = errors.iter().map(|e| e.param.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(params, want, "{case}: params of {errors:?}");
    for (e, (_, fragment)) in errors.iter().zip(expected) {
        assert!(
            e.msg.contains(fragment),
            "{case}: {:?} should contain {fragment:?}",
            e.msg
        );
    }
}
