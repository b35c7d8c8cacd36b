//! A rule's action (`metadata`): which destination action to run and on which tag or list, given by id
//! as Meshes does (`metadata.id`) or by a name template (`metadata.tag` / `metadata.list`). Parsed with
//! per-field errors; serializes back to the metadata JSON.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::FieldError;
use super::matching::EventView;
use super::template::{Template, TemplateError};

/// Longest `metadata.id` accepted, in characters (ActiveCampaign ids are short decimal strings).
pub const MAX_ID_LEN: usize = 64;

/// The action names, in the order error messages list them (the integration's actions).
pub const ACTION_NAMES: [&str; 5] = [
    "add_tag",
    "remove_tag",
    "add_to_list",
    "remove_from_list",
    "sync_contact",
];

/// Which tag or list an action works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A destination id (`metadata.id`), always kept as a string even when the client sent a number.
    Id(String),
    /// A name template (`metadata.tag` / `metadata.list`), rendered per event and resolved to an id at
    /// delivery.
    Template(Template),
}

/// A target for one event: an id to use as is, or a rendered name the delivery must resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedTarget {
    Id(String),
    Name(String),
}

impl Target {
    /// Renders the target for an event. Only a template can fail.
    pub fn resolve(&self, ev: &EventView<'_>) -> Result<ResolvedTarget, TemplateError> {
        match self {
            Target::Id(id) => Ok(ResolvedTarget::Id(id.clone())),
            Target::Template(t) => t.render(ev).map(ResolvedTarget::Name),
        }
    }
}

/// What a rule does on the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    AddTag(Target),
    RemoveTag(Target),
    AddToList(Target),
    RemoveFromList(Target),
    /// Creates or updates the contact from the payload's well-known keys.
    SyncContact,
}

impl Action {
    /// The wire name (`"add_tag"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Action::AddTag(_) => "add_tag",
            Action::RemoveTag(_) => "remove_tag",
            Action::AddToList(_) => "add_to_list",
            Action::RemoveFromList(_) => "remove_from_list",
            Action::SyncContact => "sync_contact",
        }
    }

    /// The tag or list the action works on; `None` for `sync_contact`.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Action::AddTag(t)
            | Action::RemoveTag(t)
            | Action::AddToList(t)
            | Action::RemoveFromList(t) => Some(t),
            Action::SyncContact => None,
        }
    }

    /// The metadata key that carries this action's name template (`"tag"` or `"list"`).
    fn template_key(&self) -> Option<&'static str> {
        match self {
            Action::AddTag(_) | Action::RemoveTag(_) => Some("tag"),
            Action::AddToList(_) | Action::RemoveFromList(_) => Some("list"),
            Action::SyncContact => None,
        }
    }
}

/// `{"action": "add_tag", "id": "64"}`, `{"action": "add_tag", "tag": "step-{{payload.n}}"}`,
/// `{"action": "sync_contact"}`.
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let target = self.target();
        let mut map = s.serialize_map(Some(1 + usize::from(target.is_some())))?;
        map.serialize_entry("action", self.name())?;
        match (target, self.template_key()) {
            (Some(Target::Id(id)), _) => map.serialize_entry("id", id)?,
            (Some(Target::Template(t)), Some(key)) => map.serialize_entry(key, t)?,
            _ => {}
        }
        map.end()
    }
}

/// Builds an action from its target.
type MakeAction = fn(Target) -> Action;

/// A tag or list action before its target is checked: the metadata key of its name template and
/// how to build it.
#[derive(Clone, Copy)]
struct TargetSpec {
    key: &'static str,
    make: MakeAction,
}

/// An action name before its target is checked (`target` is `None` for `sync_contact`).
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    target: Option<TargetSpec>,
}

fn kind(name: &str) -> Option<Kind> {
    let spec = |key, make: MakeAction| Some(TargetSpec { key, make });
    let (name, target) = match name {
        "add_tag" => ("add_tag", spec("tag", Action::AddTag)),
        "remove_tag" => ("remove_tag", spec("tag", Action::RemoveTag)),
        "add_to_list" => ("add_to_list", spec("list", Action::AddToList)),
        "remove_from_list" => ("remove_from_list", spec("list", Action::RemoveFromList)),
        "sync_contact" => ("sync_contact", None),
        _ => return None,
    };
    Some(Kind { name, target })
}

/// Parses `metadata.id`: a non-blank string, or a non-negative integer kept as its decimal string.
fn parse_id(v: &Value) -> Result<String, String> {
    let id = match v {
        Value::String(s) if s.trim().is_empty() => return Err("must not be blank".into()),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.as_u64().is_some() => n.to_string(),
        _ => return Err("must be a string or a non-negative integer".into()),
    };
    if id.chars().count() > MAX_ID_LEN {
        return Err(format!("must be at most {MAX_ID_LEN} characters"));
    }
    Ok(id)
}

fn parse_template(v: &Value) -> Result<Template, String> {
    match v {
        Value::String(s) => Template::parse(s).map_err(|e| e.to_string()),
        _ => Err("must be a string".into()),
    }
}

/// Parses a rule's `metadata`, collecting every problem, each naming the field as the client sent it
/// (`metadata.action`, `metadata.id`, `metadata.tag`, `metadata.list`). A `null` field counts as absent;
/// unknown fields are ignored, as everywhere in the API.
///
/// `add_tag`/`remove_tag` take `id` or `tag`, `add_to_list`/`remove_from_list` take `id` or `list`,
/// `sync_contact` takes none of them; giving both an id and a template, or a field the action does
/// not use, is an error rather than a silent choice.
pub fn parse_metadata(value: &Value) -> Result<Action, Vec<FieldError>> {
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Null => return Err(vec![FieldError::new("metadata", "is required")]),
        _ => return Err(vec![FieldError::new("metadata", "must be an object")]),
    };
    let mut errors = Vec::new();
    let field = |key: &str| obj.get(key).filter(|v| !v.is_null());

    let kind = match field("action") {
        None => {
            errors.push(FieldError::new("metadata.action", "is required"));
            None
        }
        Some(v) => {
            let k = v.as_str().and_then(kind);
            if k.is_none() {
                let msg = format!("must be one of {}", ACTION_NAMES.join(", "));
                errors.push(FieldError::new("metadata.action", msg));
            }
            k
        }
    };

    // Each present field is checked for its own shape even when the action is bad, so one round
    // trip reports everything.
    let mut checked = |key: &str, parse: &dyn Fn(&Value) -> Result<Target, String>| {
        field(key).and_then(|v| match parse(v) {
            Ok(t) => Some(t),
            Err(msg) => {
                errors.push(FieldError::new(format!("metadata.{key}"), msg));
                None
            }
        })
    };
    let id = checked("id", &|v| parse_id(v).map(Target::Id));
    let tag = checked("tag", &|v| parse_template(v).map(Target::Template));
    let list = checked("list", &|v| parse_template(v).map(Target::Template));

    let action = kind.and_then(|kind| {
        let name = kind.name;
        let Some(TargetSpec { key: own, make }) = kind.target else {
            for key in ["id", "tag", "list"] {
                if field(key).is_some() {
                    errors.push(FieldError::new(
                        format!("metadata.{key}"),
                        format!("is not used by {name}"),
                    ));
                }
            }
            return Some(Action::SyncContact);
        };
        let (other, template) = if own == "tag" {
            ("list", tag)
        } else {
            ("tag", list)
        };
        if field(other).is_some() {
            errors.push(FieldError::new(
                format!("metadata.{other}"),
                format!("is not used by {name}; give metadata.id or metadata.{own}"),
            ));
        }
        match (field("id").is_some(), field(own).is_some()) {
            (true, true) => {
                let msg = format!("give either metadata.id or metadata.{own}, not both");
                errors.push(FieldError::new("metadata.id", msg));
                None
            }
            (false, false) => {
                let msg =
                    format!("is required for {name} (or give a name template in metadata.{own})");
                errors.push(FieldError::new("metadata.id", msg));
                None
            }
            // A present but invalid field was reported above and left `None`.
            _ => id.or(template).map(make),
        }
    });
    match action {
        Some(action) if errors.is_empty() => Ok(action),
        _ => Err(errors),
    }
}
