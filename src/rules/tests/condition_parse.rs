//! Parsing `conditions`: per-field errors, limits and serialization back to JSON.

use serde_json::{Value, json};

use super::{ErrorCase, assert_field_errors};
use crate::rules::condition::{MAX_CONDITIONS, MAX_IN_VALUES, parse_conditions};

#[test]
fn absent_or_empty_conditions_parse_to_none() {
    assert_eq!(parse_conditions(&Value::Null), Ok(vec![]));
    assert_eq!(parse_conditions(&json!([])), Ok(vec![]));
}

#[test]
fn conditions_serialize_back_to_the_shape_they_were_sent_in() {
    let sent = json!([
        {"path": "payload.page_id", "op": "eq", "value": "page_connect-crm"},
        {"path": "payload.sequence_step", "op": "ne", "value": 3},
        {"path": "payload.plan", "op": "in", "value": ["pro", 2, true, 2.5]},
        {"path": "payload.email", "op": "exists", "value": false},
        {"path": "payload.score", "op": "gt", "value": 2.5},
        {"path": "payload.big", "op": "gte", "value": 18446744073709551615u64},
        {"path": "payload.at", "op": "lt", "value": "2026-03-21T15:06:00Z"},
        {"path": "payload.n", "op": "lte", "value": -1},
        {"path": "payload.items.0.tags", "op": "contains", "value": "vip"}
    ]);
    let parsed = parse_conditions(&sent).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), sent);
}

#[test]
fn exists_without_a_value_serializes_with_its_default() {
    let parsed = parse_conditions(&json!([{"path": "payload.email", "op": "exists"}])).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        json!([{"path": "payload.email", "op": "exists", "value": true}])
    );
}

#[test]
fn each_invalid_condition_field_is_named() {
    let table: Vec<ErrorCase> = vec![
        (
            "not an array",
            json!({"path": "payload.a"}),
            vec![("conditions", "must be an array")],
        ),
        (
            "a string",
            json!("payload.a eq 1"),
            vec![("conditions", "must be an array")],
        ),
        (
            "an item that is not an object",
            json!([1]),
            vec![("conditions[0]", "must be an object")],
        ),
        (
            "no path",
            json!([{"op": "eq", "value": 1}]),
            vec![("conditions[0].path", "is required")],
        ),
        (
            "null path",
            json!([{"path": null, "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "is required")],
        ),
        (
            "a number path",
            json!([{"path": 5, "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "must be a string")],
        ),
        (
            "an empty path",
            json!([{"path": "", "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "must not be empty")],
        ),
        (
            "an empty segment",
            json!([{"path": "payload..a", "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "empty segment")],
        ),
        (
            "an unknown root",
            json!([{"path": "body.a", "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "starts with `body`")],
        ),
        (
            "a field of event",
            json!([{"path": "event.name", "op": "eq", "value": 1}]),
            vec![("conditions[0].path", "no fields")],
        ),
        (
            "no op",
            json!([{"path": "payload.a", "value": 1}]),
            vec![("conditions[0].op", "is required")],
        ),
        (
            "an unknown op",
            json!([{"path": "payload.a", "op": "equals", "value": 1}]),
            vec![(
                "conditions[0].op",
                "must be one of eq, ne, in, exists, gt, gte, lt, lte, contains",
            )],
        ),
        (
            "an upper-case op",
            json!([{"path": "payload.a", "op": "EQ", "value": 1}]),
            vec![("conditions[0].op", "must be one of")],
        ),
        (
            "a number op",
            json!([{"path": "payload.a", "op": 7, "value": 1}]),
            vec![("conditions[0].op", "must be one of")],
        ),
        (
            "eq without a value",
            json!([{"path": "payload.a", "op": "eq"}]),
            vec![("conditions[0].value", "is required for op eq")],
        ),
        (
            "eq with null",
            json!([{"path": "payload.a", "op": "eq", "value": null}]),
            vec![("conditions[0].value", "use op exists")],
        ),
        (
            "ne with null",
            json!([{"path": "payload.a", "op": "ne", "value": null}]),
            vec![("conditions[0].value", "must not be null for op ne")],
        ),
        (
            "eq with an object",
            json!([{"path": "payload.a", "op": "eq", "value": {}}]),
            vec![(
                "conditions[0].value",
                "must be a string, number or boolean for op eq",
            )],
        ),
        (
            "eq with an array",
            json!([{"path": "payload.a", "op": "eq", "value": [1]}]),
            vec![("conditions[0].value", "must be a string, number or boolean")],
        ),
        (
            "contains with an object",
            json!([{"path": "payload.a", "op": "contains", "value": {"a": 1}}]),
            vec![("conditions[0].value", "for op contains")],
        ),
        (
            "contains without a value",
            json!([{"path": "payload.a", "op": "contains"}]),
            vec![("conditions[0].value", "is required for op contains")],
        ),
        (
            "gt with a boolean",
            json!([{"path": "payload.a", "op": "gt", "value": true}]),
            vec![(
                "conditions[0].value",
                "must be a number or a string for op gt",
            )],
        ),
        (
            "gte with an array",
            json!([{"path": "payload.a", "op": "gte", "value": [1]}]),
            vec![("conditions[0].value", "for op gte")],
        ),
        (
            "lt with null",
            json!([{"path": "payload.a", "op": "lt", "value": null}]),
            vec![("conditions[0].value", "must not be null")],
        ),
        (
            "lte without a value",
            json!([{"path": "payload.a", "op": "lte"}]),
            vec![("conditions[0].value", "is required for op lte")],
        ),
        (
            "in with a scalar",
            json!([{"path": "payload.a", "op": "in", "value": "a"}]),
            vec![("conditions[0].value", "must be an array for op in")],
        ),
        (
            "in with an empty array",
            json!([{"path": "payload.a", "op": "in", "value": []}]),
            vec![("conditions[0].value", "1 to 1000 elements")],
        ),
        (
            "in with an object element",
            json!([{"path": "payload.a", "op": "in", "value": ["a", {}]}]),
            vec![(
                "conditions[0].value[1]",
                "must be a string, number or boolean",
            )],
        ),
        (
            "in with a null element",
            json!([{"path": "payload.a", "op": "in", "value": [null]}]),
            vec![("conditions[0].value[0]", "must be a string")],
        ),
        (
            "exists with a string",
            json!([{"path": "payload.a", "op": "exists", "value": "yes"}]),
            vec![("conditions[0].value", "must be true or false")],
        ),
        (
            "exists with a number",
            json!([{"path": "payload.a", "op": "exists", "value": 1}]),
            vec![("conditions[0].value", "must be true or false")],
        ),
        (
            "every problem in every condition",
            json!([
                {"path": "payload.ok", "op": "eq", "value": 1},
                {"path": "x", "op": "bogus"},
                {"path": "payload.b", "op": "in", "value": []},
                "nope"
            ]),
            vec![
                ("conditions[1].path", "starts with `x`"),
                ("conditions[1].op", "must be one of"),
                ("conditions[2].value", "1 to 1000"),
                ("conditions[3]", "must be an object"),
            ],
        ),
    ];
    for (case, sent, expected) in table {
        let errors = parse_conditions(&sent).expect_err(case);
        assert_field_errors(case, &errors, &expected);
    }
}

#[test]
fn too_many_conditions_or_in_values_are_rejected() {
    let one = json!({"path": "payload.a", "op": "exists"});
    let at_limit = Value::Array(vec![one.clone(); MAX_CONDITIONS]);
    assert_eq!(
        parse_conditions(&at_limit).map(|c| c.len()),
        Ok(MAX_CONDITIONS)
    );
    let over = Value::Array(vec![one; MAX_CONDITIONS + 1]);
    let errors = parse_conditions(&over).unwrap_err();
    assert_field_errors("over the limit", &errors, &[("conditions", "at most 50")]);

    let values = |n: usize| Value::Array((0..n).map(|i| json!(i)).collect());
    let in_list = |n| json!([{"path": "payload.a", "op": "in", "value": values(n)}]);
    assert!(parse_conditions(&in_list(MAX_IN_VALUES)).is_ok());
    let errors = parse_conditions(&in_list(MAX_IN_VALUES + 1)).unwrap_err();
    assert_field_errors(
        "in over the limit",
        &errors,
        &[("conditions[0].value", "1 to 1000")],
    );
}
