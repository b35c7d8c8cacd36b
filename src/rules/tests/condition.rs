//! Operator semantics: each op against the sample event, true, false, missing and mismatched rows.

use serde_json::{Value, json};

use super::{sample_payload, view, view_without_resource_id};
use crate::rules::condition::{Condition, parse_conditions};

/// One condition from its three fields; `Value::Null` as the value leaves it out.
fn condition(path: &str, op: &str, value: &Value) -> Condition {
    let mut raw = json!({"path": path, "op": op});
    if !value.is_null() {
        raw["value"] = value.clone();
    }
    let mut parsed = parse_conditions(&json!([raw])).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
    parsed.remove(0)
}

/// Runs a table of `(path, op, value, expected)` rows against the sample event.
#[track_caller]
fn check(op: &str, table: &[(&str, Value, bool)]) {
    let payload = sample_payload();
    let ev = view(&payload);
    for (path, value, want) in table {
        let c = condition(path, op, value);
        assert_eq!(c.holds(&ev), *want, "{path} {op} {value}");
    }
}

#[test]
fn eq_is_typed_equality() {
    check(
        "eq",
        &[
            ("payload.sequence_step", json!(3), true),
            ("payload.sequence_step", json!(3.0), true),
            ("payload.whole_float", json!(3), true),
            ("payload.sequence_step", json!(4), false),
            ("payload.big", json!(18446744073709551615u64), true),
            ("payload.big", json!(-1), false),
            ("payload.neg", json!(-4), true),
            // Integers compare exactly, beyond f64's 2^53.
            ("payload.precise", json!(9007199254740993u64), true),
            ("payload.precise", json!(9007199254740992u64), false),
            ("payload.email", json!("ada@example.com"), true),
            ("payload.email", json!("ADA@example.com"), false),
            ("payload.done", json!(true), true),
            ("payload.off", json!(false), true),
            ("payload.done", json!(false), false),
            // Type mismatches never hold, whichever way round.
            ("payload.sequence_step", json!("3"), false),
            ("payload.text_three", json!(3), false),
            ("payload.done", json!("true"), false),
            ("payload.done", json!(1), false),
            ("payload.nothing", json!("null"), false),
            ("payload.user", json!("pro"), false),
            ("payload.tags", json!("vip"), false),
            // Missing paths never hold.
            ("payload.missing", json!("x"), false),
            ("payload.items.9.sku", json!("A-1"), false),
            // Nested and array-index paths, and the event's own fields.
            ("payload.user.plan.name", json!("pro"), true),
            ("payload.items.1.sku", json!("B-2"), true),
            ("payload.items.1.qty", json!(0), true),
            ("payload.by_number.0", json!("zero-key"), true),
            ("event", json!("page.completed"), true),
            ("event", json!("page.viewed"), false),
            ("resource", json!("onboarding_sequence"), true),
            ("resource_id", json!("workspace-setup"), true),
        ],
    );
}

#[test]
fn ne_is_the_negation_of_eq_so_it_holds_on_missing_null_and_mismatched_fields() {
    check(
        "ne",
        &[
            ("payload.sequence_step", json!(4), true),
            ("payload.sequence_step", json!(3), false),
            ("payload.sequence_step", json!(3.0), false),
            ("payload.email", json!("ada@example.com"), false),
            ("payload.email", json!("bob@example.com"), true),
            ("payload.done", json!(false), true),
            ("payload.done", json!(true), false),
            ("payload.sequence_step", json!("3"), true),
            ("payload.nothing", json!("x"), true),
            ("payload.missing", json!("x"), true),
            ("payload.user.plan.seats", json!(10), false),
            ("resource", json!("global"), true),
        ],
    );
}

#[test]
fn ne_on_a_missing_resource_id_holds() {
    let payload = sample_payload();
    let c = condition("resource_id", "ne", &json!("workspace-setup"));
    assert!(c.holds(&view_without_resource_id(&payload)));
    assert!(!c.holds(&view(&payload)));
}

#[test]
fn in_holds_when_the_field_equals_any_element_typed() {
    check(
        "in",
        &[
            ("payload.sequence_step", json!([1, 2, 3]), true),
            ("payload.sequence_step", json!([1.0, 3.0]), true),
            ("payload.sequence_step", json!([1, 2]), false),
            ("payload.sequence_step", json!(["3"]), false),
            ("payload.text_three", json!([3, "3"]), true),
            (
                "payload.email",
                json!(["x@example.com", "ada@example.com"]),
                true,
            ),
            ("payload.done", json!([true]), true),
            ("payload.done", json!([1, "true"]), false),
            ("payload.nothing", json!(["null"]), false),
            ("payload.missing", json!(["x"]), false),
            // An array field is not "in" a list even if it shares an element.
            ("payload.tags", json!(["vip"]), false),
            ("payload.items.0.sku", json!(["A-1", "B-2"]), true),
            ("resource", json!(["global", "onboarding_sequence"]), true),
        ],
    );
}

#[test]
fn exists_means_present_and_not_null_and_defaults_to_true() {
    check(
        "exists",
        &[
            // `Value::Null` leaves the value out: the default is true.
            ("payload.email", Value::Null, true),
            ("payload.email", json!(true), true),
            ("payload.email", json!(false), false),
            ("payload.empty", json!(true), true),
            ("payload.off", json!(true), true),
            ("payload.user.plan", json!(true), true),
            ("payload.items.1.sku", json!(true), true),
            ("payload.items.2.sku", json!(true), false),
            ("payload.missing", Value::Null, false),
            ("payload.missing", json!(false), true),
            ("payload.nothing", json!(true), false),
            ("payload.nothing", json!(false), true),
            ("resource_id", json!(true), true),
            ("event", json!(false), false),
        ],
    );
}

#[test]
fn exists_on_a_missing_resource_id_does_not_hold() {
    let payload = sample_payload();
    let c = condition("resource_id", "exists", &json!(true));
    assert!(!c.holds(&view_without_resource_id(&payload)));
    let c = condition("resource_id", "exists", &json!(false));
    assert!(c.holds(&view_without_resource_id(&payload)));
}

#[test]
fn ordering_ops_compare_numbers_numerically() {
    let step = "payload.sequence_step"; // 3
    let table: &[(&str, &str, Value, bool)] = &[
        (step, "gt", json!(2), true),
        (step, "gt", json!(3), false),
        (step, "gt", json!(2.99), true),
        (step, "gte", json!(3), true),
        (step, "gte", json!(3.0), true),
        (step, "gte", json!(4), false),
        (step, "lt", json!(3), false),
        (step, "lt", json!(3.5), true),
        (step, "lte", json!(3), true),
        (step, "lte", json!(2), false),
        ("payload.score", "gt", json!(2), true),
        ("payload.score", "lt", json!(2.5), false),
        ("payload.score", "lte", json!(2.5), true),
        ("payload.neg", "lt", json!(0), true),
        ("payload.neg", "gt", json!(-5), true),
        // u64 beyond i64 compares exactly with integers.
        ("payload.big", "gt", json!(9223372036854775807i64), true),
        ("payload.big", "lt", json!(-1), false),
        ("payload.precise", "gt", json!(9007199254740992u64), true),
        ("payload.precise", "lte", json!(9007199254740992u64), false),
        ("payload.items.1.qty", "lte", json!(0), true),
    ];
    check_rows(table);
}

#[test]
fn ordering_ops_compare_strings_lexically_so_utc_timestamps_order_in_time() {
    let at = "payload.at"; // 2026-03-21T15:06:00Z
    let table: &[(&str, &str, Value, bool)] = &[
        (at, "gt", json!("2026-03-21T15:05:59Z"), true),
        (at, "gt", json!("2026-03-21T15:06:00Z"), false),
        (at, "gte", json!("2026-03-21T15:06:00Z"), true),
        (at, "lt", json!("2026-03-21T15:06:01Z"), true),
        (at, "lt", json!("2025-12-31T23:59:59Z"), false),
        (at, "lte", json!("2026-03-21T15:06:00Z"), true),
        (at, "gt", json!("2027-01-01T00:00:00Z"), false),
        ("payload.email", "gt", json!("a"), true),
        ("payload.email", "lt", json!("b"), true),
        ("payload.email", "lt", json!("B"), false),
        ("event", "gte", json!("page."), true),
    ];
    check_rows(table);
}

#[test]
fn ordering_ops_do_not_hold_across_types_or_on_missing_fields() {
    let table: &[(&str, &str, Value, bool)] = &[
        ("payload.text_three", "gt", json!(2), false),
        ("payload.text_three", "lt", json!(4), false),
        ("payload.sequence_step", "gt", json!("2"), false),
        ("payload.sequence_step", "lte", json!("9"), false),
        ("payload.done", "gt", json!(0), false),
        ("payload.done", "gte", json!("true"), false),
        ("payload.tags", "gt", json!(1), false),
        ("payload.user", "lt", json!("z"), false),
        ("payload.nothing", "lt", json!(1), false),
        ("payload.nothing", "gte", json!(""), false),
        ("payload.missing", "gt", json!(1), false),
        ("payload.missing", "lte", json!(1), false),
    ];
    check_rows(table);
}

#[test]
fn contains_finds_substrings_and_equal_array_elements() {
    check(
        "contains",
        &[
            ("payload.email", json!("@example"), true),
            ("payload.email", json!("@other"), false),
            ("payload.email", json!(""), true),
            ("payload.email", json!("EXAMPLE"), false),
            ("payload.tags", json!("beta"), true),
            ("payload.tags", json!("bet"), false),
            ("payload.tags", json!("gamma"), false),
            ("payload.tags", json!(7), true),
            ("payload.tags", json!(7.0), true),
            ("payload.tags", json!("7"), false),
            ("payload.tags", json!(true), true),
            ("payload.tags", json!(false), false),
            ("payload.text_three", json!("3"), true),
            // A number is not text; an object is not a list.
            ("payload.sequence_step", json!(3), false),
            ("payload.sequence_step", json!("3"), false),
            ("payload.email", json!(1), false),
            ("payload.user", json!("plan"), false),
            ("payload.nothing", json!("x"), false),
            ("payload.missing", json!("x"), false),
            ("event", json!("completed"), true),
        ],
    );
}

fn check_rows(table: &[(&str, &str, Value, bool)]) {
    let payload = sample_payload();
    let ev = view(&payload);
    for (path, op, value, want) in table {
        assert_eq!(
            condition(path, op, value).holds(&ev),
            *want,
            "{path} {op} {value}"
        );
    }
}
