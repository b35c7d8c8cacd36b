//! Validation of one incoming event, per API.md: parse once at the edge into a `ValidEvent`.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// Longest event name.
pub const MAX_EVENT_NAME_CHARS: usize = 128;
/// Longest `resource`.
pub const MAX_RESOURCE_CHARS: usize = 128;
/// Largest single event, as JSON.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Deepest nesting of one event (the event object itself is level 1).
pub const MAX_EVENT_DEPTH: usize = 32;

/// An event that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEvent {
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub payload: Value,
    /// `payload.email`, lower-cased.
    pub contact_email: Option<String>,
    /// `workspace` from the body, when given (machine-key callers must give it).
    pub workspace: Option<uuid::Uuid>,
}

/// Validates one event object. `prefix` is prepended to field names (`[3].` for bulk items);
/// `known_size` is the item's JSON size when the caller already knows it (the whole body of `/events`).
pub fn validate_event(
    item: &Value,
    prefix: &str,
    require_workspace: bool,
    known_size: Option<usize>,
) -> Result<ValidEvent, Vec<FieldError>> {
    let field = |name: &str| format!("{prefix}{name}");
    let Value::Object(obj) = item else {
        return Err(vec![FieldError::new(
            if prefix.is_empty() {
                "body".to_owned()
            } else {
                prefix.trim_end_matches('.').to_owned()
            },
            "must be a JSON object",
        )]);
    };
    let size = known_size.unwrap_or_else(|| {
        serde_json::to_vec(item)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    });
    if size > MAX_EVENT_BYTES {
        return Err(vec![FieldError::new(
            field("event"),
            "is larger than 256 KiB as JSON",
        )]);
    }
    if depth(item) > MAX_EVENT_DEPTH {
        return Err(vec![FieldError::new(
            field("payload"),
            "is nested deeper than 32 levels",
        )]);
    }
    if has_nul(item) {
        // PostgreSQL cannot store U+0000 in text or jsonb; refuse it on both backends alike.
        return Err(vec![FieldError::new(
            field("event"),
            "must not contain the NUL character (U+0000)",
        )]);
    }

    let mut errors = Vec::new();
    let event = match obj.get("event") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("event"), "is required"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::new(field("event"), "must not be blank"));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_EVENT_NAME_CHARS => {
            errors.push(FieldError::new(
                field("event"),
                "must be at most 128 characters",
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(field("event"), "must be a string"));
            None
        }
    };

    let mut contact_email = None;
    let payload = match obj.get("payload") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("payload"), "is required"));
            None
        }
        Some(Value::Object(map)) => {
            if !map.values().any(|v| !is_empty_value(v)) {
                errors.push(FieldError::new(
                    field("payload"),
                    "must contain at least one value",
                ));
            }
            match check_email(map) {
                Ok(email) => contact_email = email,
                Err(msg) => errors.push(FieldError::new(field("payload.email"), msg)),
            }
            Some(Value::Object(map.clone()))
        }
        Some(_) => {
            errors.push(FieldError::new(field("payload"), "must be a JSON object"));
            None
        }
    };

    let resource = match obj.get("resource") {
        None | Some(Value::Null) => Some("global".to_owned()),
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::new(field("resource"), "must not be blank"));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_RESOURCE_CHARS => {
            errors.push(FieldError::new(
                field("resource"),
                "must be at most 128 characters",
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(field("resource"), "must be a string"));
            None
        }
    };

    let resource_id = match obj.get("resource_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_resource_id(s) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                field("resource_id"),
                "must match ^[A-Za-z0-9._:-]{1,64}$",
            ));
            None
        }
    };

    let workspace = match obj.get("workspace") {
        None | Some(Value::Null) => {
            if require_workspace {
                errors.push(FieldError::new(
                    field("workspace"),
                    "is required with a machine key",
                ));
            }
            None
        }
        Some(Value::String(s)) => match uuid::Uuid::parse_str(s) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new(
                    field("workspace"),
                    "must be a workspace id (UUID)",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                field("workspace"),
                "must be a workspace id (UUID)",
            ));
            None
        }
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidEvent {
        event: event.expect("checked"),
        resource: resource.expect("checked"),
        resource_id,
        payload: payload.expect("checked"),
        contact_email,
        workspace,
    })
}

/// null, "", whitespace, [] and {} count as empty.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn check_email(map: &Map<String, Value>) -> Result<Option<String>, &'static str> {
    match map.get("email") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_email(s) => Ok(Some(s.to_lowercase())),
        Some(_) => Err("must be a valid email address"),
    }
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces, ≤ 254 chars.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

fn is_resource_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Nesting depth: a scalar is 0, a container is 1 + its deepest child. Iterative, so a hostile
/// document cannot overflow the stack (serde_json already caps parsing at 128 levels).
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Object(o) => {
                max = max.max(d + 1);
                stack.extend(o.values().map(|c| (c, d + 1)));
            }
            _ => max = max.max(d),
        }
    }
    max
}

/// True when any key or string in `v` contains U+0000.
fn has_nul(v: &Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => {
                if o.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(o.values());
            }
            _ => {}
        }
    }
    false
}

/// A canonical form of an event (object keys sorted) so an idempotent repeat with reordered keys
/// or other whitespace still counts as the same body.
pub fn canonical_hash(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<_> = o.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&o[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    crate::auth::crypto::sha256_hex(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        json!({"event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
               "payload": {"user_id": "usr_5012", "email": "Alex@Northstar.io", "page_id": "page_connect-crm",
                           "page_title": "Connect your CRM", "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z"}})
    }

    fn errors(v: Value) -> Vec<String> {
        validate_event(&v, "", false, None)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{} {}", e.param, e.msg))
            .collect()
    }

    #[test]
    fn the_onboarding_example_is_valid() {
        let v = validate_event(&example(), "", false, None).unwrap();
        assert_eq!(v.event, "page.completed");
        assert_eq!(v.resource, "onboarding_sequence");
        assert_eq!(v.resource_id.as_deref(), Some("workspace-setup"));
        assert_eq!(v.contact_email.as_deref(), Some("alex@northstar.io"));
    }

    #[test]
    fn resource_defaults_to_global() {
        let v =
            validate_event(&json!({"event": "x", "payload": {"a": 1}}), "", false, None).unwrap();
        assert_eq!(v.resource, "global");
        assert_eq!(v.resource_id, None);
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"payload": {"a": 1}}), "event is required"),
            (
                json!({"event": "  ", "payload": {"a": 1}}),
                "event must not be blank",
            ),
            (
                json!({"event": "x".repeat(129), "payload": {"a": 1}}),
                "event must be at most 128 characters",
            ),
            (
                json!({"event": 5, "payload": {"a": 1}}),
                "event must be a string",
            ),
            (json!({"event": "x"}), "payload is required"),
            (
                json!({"event": "x", "payload": []}),
                "payload must be a JSON object",
            ),
            (
                json!({"event": "x", "payload": {}}),
                "payload must contain at least one value",
            ),
            (
                json!({"event": "x", "payload": {"a": null, "b": "", "c": "  ", "d": [], "e": {}}}),
                "payload must contain at least one value",
            ),
            (
                json!({"event": "x", "payload": {"email": "nope"}}),
                "payload.email must be a valid email address",
            ),
            (
                json!({"event": "x", "payload": {"a": 1}, "resource": ""}),
                "resource must not be blank",
            ),
            (
                json!({"event": "x", "payload": {"a": 1}, "resource": 1}),
                "resource must be a string",
            ),
            (
                json!({"event": "x", "payload": {"a": 1}, "resource_id": "a b"}),
                "resource_id must match ^[A-Za-z0-9._:-]{1,64}$",
            ),
            (
                json!({"event": "x", "payload": {"a": 1}, "resource_id": "a".repeat(65)}),
                "resource_id must match ^[A-Za-z0-9._:-]{1,64}$",
            ),
            (
                json!({"event": "x", "payload": {"a": 1}, "workspace": "nope"}),
                "workspace must be a workspace id (UUID)",
            ),
            (json!(["x"]), "body must be a JSON object"),
            (
                json!({"event": "x", "payload": {"a": "nul\u{0}"}}),
                "event must not contain the NUL character (U+0000)",
            ),
            (
                json!({"event": "x", "payload": {"k\u{0}": 1}}),
                "event must not contain the NUL character (U+0000)",
            ),
        ];
        for (input, want) in cases {
            let got = errors(input.clone());
            assert!(got.contains(&want.to_owned()), "{input}: {got:?}");
        }
    }

    #[test]
    fn zero_and_false_are_values() {
        assert!(
            validate_event(&json!({"event": "x", "payload": {"a": 0}}), "", false, None).is_ok()
        );
        assert!(
            validate_event(
                &json!({"event": "x", "payload": {"a": false}}),
                "",
                false,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn machine_key_callers_must_name_the_workspace() {
        let e = validate_event(
            &json!({"event": "x", "payload": {"a": 1}}),
            "[2].",
            true,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            vec![FieldError::new(
                "[2].workspace",
                "is required with a machine key"
            )]
        );
    }

    #[test]
    fn size_and_depth_limits_apply() {
        let big = json!({"event": "x", "payload": {"a": "y".repeat(MAX_EVENT_BYTES)}});
        assert_eq!(errors(big), vec!["event is larger than 256 KiB as JSON"]);
        let mut deep = json!(1);
        for _ in 0..31 {
            deep = json!({"a": deep});
        }
        // event object (1) + payload (31 nested objects) = 32 levels: allowed.
        assert!(
            validate_event(
                &json!({"event": "x", "payload": deep.clone()}),
                "",
                false,
                None
            )
            .is_ok()
        );
        let deeper = json!({"event": "x", "payload": {"b": deep}});
        assert_eq!(
            errors(deeper),
            vec!["payload is nested deeper than 32 levels"]
        );
    }

    #[test]
    fn emails_are_checked_pragmatically() {
        for ok in ["alex@northstar.io", "a.b+c@x.co.uk", "ü@exämple.de"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.c", "a@.b", "a@b.", "a b@c.d", "a@b..c", "a@b@c.d",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn the_canonical_hash_ignores_key_order() {
        let a = json!({"event": "x", "payload": {"a": 1, "b": [1, {"c": 2, "d": 3}]}});
        let b: Value =
            serde_json::from_str(r#"{"payload":{"b":[1,{"d":3,"c":2}],"a":1},"event":"x"}"#)
                .unwrap();
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(
            canonical_hash(&a),
            canonical_hash(&json!({"event": "y", "payload": {"a": 1}}))
        );
    }
}
