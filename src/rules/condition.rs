//! Rule conditions (`{"path", "op", "value"}`): parsing from the rule's JSON with per-field errors, typed
//! evaluation against an event, and serialization back to the same shape.
//!
//! # Semantics
//!
//! Comparisons are **typed**; nothing is ever coerced:
//!
//! - numbers compare with numbers, numerically, whatever their JSON form (`3`, `3.0` and `3e0` are equal;
//!   integers compare exactly, a float against anything compares at `f64` precision);
//! - strings compare with strings, byte-wise (code-point order), which orders RFC 3339 UTC timestamps
//!   written in the same form (`2026-03-21T15:06:00Z`) chronologically;
//! - booleans support only `eq`, `ne`, `in` and `contains`; `gt` and friends on a boolean do not hold;
//! - a field of another type than the value (the number `3` against the string `"3"`, or `null`, an
//!   object or an array against a scalar) simply makes the comparison **not hold** — never an error.
//!
//! Per operator:
//!
//! | op | holds when |
//! |---|---|
//! | `eq` | the field is present and equal (typed) to `value` |
//! | `ne` | **not `eq`**: also when the field is missing, null or of another type |
//! | `in` | the field equals (typed) any element of `value`, a non-empty array (an array field is never "in"; use `contains`) |
//! | `exists` | `value: true` (the default): the field is present and not null; `value: false`: the opposite |
//! | `gt` `gte` `lt` `lte` | field and `value` are both numbers or both strings, and ordered so |
//! | `contains` | a string field contains the string `value`, or an array field has an element equal to `value` |
//!
//! A missing path makes every operator except `ne` and `exists` not hold. Values are scalars (string,
//! number, boolean); `null` is refused because "equals null" is better said with `exists: false`.

use std::cmp::Ordering;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Number, Value};

use super::FieldError;
use super::matching::EventView;
use super::path::{Found, Path};

/// Most conditions on one rule. Every condition runs on every matching event at ingest.
pub const MAX_CONDITIONS: usize = 50;

/// Most elements in an `in` list.
pub const MAX_IN_VALUES: usize = 1000;

/// A scalar a condition compares against.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    /// Kept as sent, so `2.5` and `18446744073709551615` serialize back unchanged.
    Number(Number),
    Bool(bool),
}

impl Literal {
    fn from_json(v: &Value) -> Option<Literal> {
        match v {
            Value::String(s) => Some(Literal::String(s.clone())),
            Value::Number(n) => Some(Literal::Number(n.clone())),
            Value::Bool(b) => Some(Literal::Bool(*b)),
            _ => None,
        }
    }

    /// The literal as JSON, exactly as the client sent it.
    pub fn to_json(&self) -> Value {
        match self {
            Literal::String(s) => Value::String(s.clone()),
            Literal::Number(n) => Value::Number(n.clone()),
            Literal::Bool(b) => Value::Bool(*b),
        }
    }
}

/// An operator together with its (validated) value.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Eq(Literal),
    Ne(Literal),
    In(Vec<Literal>),
    /// `true`: present and not null. `false`: missing or null.
    Exists(bool),
    /// The literal is a number or a string, never a boolean.
    Gt(Literal),
    Gte(Literal),
    Lt(Literal),
    Lte(Literal),
    Contains(Literal),
}

/// The operator names, in the order error messages list them.
pub const OP_NAMES: [&str; 9] = [
    "eq", "ne", "in", "exists", "gt", "gte", "lt", "lte", "contains",
];

impl Op {
    /// The wire name (`"eq"`, `"contains"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::In(_) => "in",
            Op::Exists(_) => "exists",
            Op::Gt(_) => "gt",
            Op::Gte(_) => "gte",
            Op::Lt(_) => "lt",
            Op::Lte(_) => "lte",
            Op::Contains(_) => "contains",
        }
    }

    fn value_json(&self) -> Value {
        match self {
            Op::Eq(l)
            | Op::Ne(l)
            | Op::Gt(l)
            | Op::Gte(l)
            | Op::Lt(l)
            | Op::Lte(l)
            | Op::Contains(l) => l.to_json(),
            Op::In(ls) => Value::Array(ls.iter().map(Literal::to_json).collect()),
            Op::Exists(b) => Value::Bool(*b),
        }
    }
}

/// One condition of a rule. Serializes as `{"path", "op", "value"}` (for `exists` the value is
/// always written out, `true` when the client left it to the default).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Where the compared value is found.
    pub path: Path,
    /// The operator and its value.
    pub op: Op,
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("path", &self.path)?;
        map.serialize_entry("op", self.op.name())?;
        map.serialize_entry("value", &self.op.value_json())?;
        map.end()
    }
}

/// A field value seen through the types conditions care about.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(&'a Number),
    Bool(bool),
    Array(&'a [Value]),
    /// Null or an object: present, but equal to no literal.
    Other,
}

impl<'a> Val<'a> {
    fn of_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::String(s) => Val::Str(s),
            Value::Number(n) => Val::Num(n),
            Value::Bool(b) => Val::Bool(*b),
            Value::Array(items) => Val::Array(items),
            Value::Null | Value::Object(_) => Val::Other,
        }
    }
}

/// Orders two JSON numbers by value. Integers (`i64`/`u64`) compare exactly; anything involving a
/// float compares as `f64`. JSON has no NaN, so this is `None` only in theory.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    fn exact(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// The order of a field against a literal, when both have the same orderable type.
fn order(field: Val<'_>, lit: &Literal) -> Option<Ordering> {
    match (field, lit) {
        (Val::Num(a), Literal::Number(b)) => cmp_numbers(a, b),
        (Val::Str(a), Literal::String(b)) => Some(a.cmp(b.as_str())),
        _ => None,
    }
}

/// Typed equality: same type and same value; a mismatch is simply "not equal".
fn equals(field: Val<'_>, lit: &Literal) -> bool {
    match (field, lit) {
        (Val::Bool(a), Literal::Bool(b)) => a == *b,
        _ => order(field, lit) == Some(Ordering::Equal),
    }
}

impl Condition {
    /// Whether the condition holds for the event (see the module docs for each operator).
    pub fn holds(&self, ev: &EventView<'_>) -> bool {
        let found = self.path.resolve(ev);
        let present_not_null = match found {
            Some(Found::Text(_)) => true,
            Some(Found::Json(v)) => !v.is_null(),
            None => false,
        };
        let field = found.map(|f| match f {
            Found::Text(s) => Val::Str(s),
            Found::Json(v) => Val::of_json(v),
        });
        let ordered = |lit: &Literal| field.and_then(|f| order(f, lit));
        match &self.op {
            Op::Exists(want) => present_not_null == *want,
            Op::Eq(lit) => field.is_some_and(|f| equals(f, lit)),
            Op::Ne(lit) => !field.is_some_and(|f| equals(f, lit)),
            Op::In(lits) => field.is_some_and(|f| lits.iter().any(|l| equals(f, l))),
            Op::Gt(lit) => ordered(lit) == Some(Ordering::Greater),
            Op::Gte(lit) => matches!(ordered(lit), Some(Ordering::Greater | Ordering::Equal)),
            Op::Lt(lit) => ordered(lit) == Some(Ordering::Less),
            Op::Lte(lit) => matches!(ordered(lit), Some(Ordering::Less | Ordering::Equal)),
            Op::Contains(lit) => field.is_some_and(|f| contains(f, lit)),
        }
    }
}

/// `contains`: substring for two strings, typed membership for an array field.
fn contains(field: Val<'_>, lit: &Literal) -> bool {
    match (field, lit) {
        (Val::Str(s), Literal::String(needle)) => s.contains(needle.as_str()),
        (Val::Array(items), _) => items.iter().any(|e| equals(Val::of_json(e), lit)),
        _ => false,
    }
}

/// Parses a rule's `conditions`: absent (`null`) means none. Every problem is collected, each naming
/// the field as the client sent it (`conditions[1].op`, `conditions[0].value[2]`).
pub fn parse_conditions(value: &Value) -> Result<Vec<Condition>, Vec<FieldError>> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(vec![FieldError::new("conditions", "must be an array")]),
    };
    if items.len() > MAX_CONDITIONS {
        return Err(vec![FieldError::new(
            "conditions",
            format!("must have at most {MAX_CONDITIONS} conditions"),
        )]);
    }
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(c) = parse_one(i, item, &mut errors) {
            out.push(c);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn parse_one(i: usize, item: &Value, errors: &mut Vec<FieldError>) -> Option<Condition> {
    let param = |field: &str| format!("conditions[{i}].{field}");
    let Value::Object(obj) = item else {
        errors.push(FieldError::new(
            format!("conditions[{i}]"),
            "must be an object",
        ));
        return None;
    };
    let path = match obj.get("path") {
        None | Some(Value::Null) => Err(FieldError::new(param("path"), "is required")),
        Some(Value::String(s)) => {
            Path::parse(s).map_err(|e| FieldError::new(param("path"), e.to_string()))
        }
        Some(_) => Err(FieldError::new(param("path"), "must be a string")),
    };
    let kind = match obj.get("op") {
        None | Some(Value::Null) => Err(FieldError::new(param("op"), "is required")),
        Some(Value::String(s)) => {
            let kind = OpKind::parse(s).map(|k| (k, s.as_str()));
            kind.ok_or_else(|| {
                FieldError::new(
                    param("op"),
                    format!("must be one of {}", OP_NAMES.join(", ")),
                )
            })
        }
        Some(_) => Err(FieldError::new(
            param("op"),
            format!("must be one of {}", OP_NAMES.join(", ")),
        )),
    };
    // The value can only be checked against a known operator.
    let op = kind.and_then(|(kind, name)| parse_op(kind, name, obj.get("value"), &param("value")));
    match (path, op) {
        (Ok(path), Ok(op)) => Some(Condition { path, op }),
        (path, op) => {
            errors.extend(path.err());
            errors.extend(op.err());
            None
        }
    }
}

/// An operator name, before its value is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Eq,
    Ne,
    In,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
}

impl OpKind {
    fn parse(name: &str) -> Option<OpKind> {
        Some(match name {
            "eq" => OpKind::Eq,
            "ne" => OpKind::Ne,
            "in" => OpKind::In,
            "exists" => OpKind::Exists,
            "gt" => OpKind::Gt,
            "gte" => OpKind::Gte,
            "lt" => OpKind::Lt,
            "lte" => OpKind::Lte,
            "contains" => OpKind::Contains,
            _ => return None,
        })
    }
}

/// Checks `value` for the operator `kind` (whose wire name is `name`).
fn parse_op(
    kind: OpKind,
    name: &str,
    value: Option<&Value>,
    param: &str,
) -> Result<Op, FieldError> {
    let err = |msg: String| FieldError::new(param, msg);
    let required = || match value {
        None => Err(err(format!("is required for op {name}"))),
        Some(Value::Null) => Err(err(format!(
            "must not be null for op {name}; use op exists to test for a missing or null field"
        ))),
        Some(v) => Ok(v),
    };
    let scalar = || {
        Literal::from_json(required()?)
            .ok_or_else(|| err(format!("must be a string, number or boolean for op {name}")))
    };
    let orderable = || match required()? {
        Value::String(s) => Ok(Literal::String(s.clone())),
        Value::Number(n) => Ok(Literal::Number(n.clone())),
        _ => Err(err(format!("must be a number or a string for op {name}"))),
    };
    Ok(match kind {
        OpKind::Exists => match value {
            None | Some(Value::Null) => Op::Exists(true),
            Some(Value::Bool(b)) => Op::Exists(*b),
            Some(_) => return Err(err("must be true or false for op exists".into())),
        },
        OpKind::Eq => Op::Eq(scalar()?),
        OpKind::Ne => Op::Ne(scalar()?),
        OpKind::Contains => Op::Contains(scalar()?),
        OpKind::Gt => Op::Gt(orderable()?),
        OpKind::Gte => Op::Gte(orderable()?),
        OpKind::Lt => Op::Lt(orderable()?),
        OpKind::Lte => Op::Lte(orderable()?),
        OpKind::In => {
            let Value::Array(items) = required()? else {
                return Err(err("must be an array for op in".into()));
            };
            if items.is_empty() || items.len() > MAX_IN_VALUES {
                return Err(err(format!(
                    "must have 1 to {MAX_IN_VALUES} elements for op in"
                )));
            }
            let mut lits = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                let lit = Literal::from_json(item).ok_or_else(|| {
                    FieldError::new(
                        format!("{param}[{j}]"),
                        "must be a string, number or boolean",
                    )
                })?;
                lits.push(lit);
            }
            Op::In(lits)
        }
    })
}
