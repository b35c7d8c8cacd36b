//! Dotted paths into an event (`event`, `resource`, `resource_id`, `payload.a.b`, `payload.items.0.sku`):
//! parsed once when a rule is saved, resolved per event without allocating.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::matching::EventView;

/// Longest path accepted, in characters. Paths are stored with the rule and shown back to the client,
/// so an unbounded one is only a way to bloat rows.
pub const MAX_PATH_LEN: usize = 512;

/// Most segments after `payload`. Events nest at most 32 levels, so a deeper path can never resolve.
pub const MAX_PATH_DEPTH: usize = 32;

/// Where a path starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// The event name.
    Event,
    /// The event's resource (`"global"` when the client sent none).
    Resource,
    /// The event's resource id, missing when the client sent none.
    ResourceId,
    /// The event payload; the segments that follow walk into it.
    Payload,
}

impl Root {
    fn name(self) -> &'static str {
        match self {
            Root::Event => "event",
            Root::Resource => "resource",
            Root::ResourceId => "resource_id",
            Root::Payload => "payload",
        }
    }
}

/// One step into the payload.
///
/// The key is kept as text and, when it is a canonical non-negative integer (`0`, `12`, not `01` or
/// `+1`), also as an index. The payload decides which applies: an array is indexed, an object is
/// looked up by key, so `payload.scores.0` works for `{"scores": ["a"]}` and `{"scores": {"0": "a"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    key: String,
    index: Option<usize>,
}

impl Segment {
    fn new(key: &str) -> Self {
        let canonical =
            key.bytes().all(|b| b.is_ascii_digit()) && (key == "0" || !key.starts_with('0'));
        let index = if canonical { key.parse().ok() } else { None };
        Segment {
            key: key.to_owned(),
            index,
        }
    }
}

/// Why a path was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_PATH_LEN} characters")]
    TooLong,
    #[error("must not have an empty segment (check for `..` or a leading or trailing `.`)")]
    EmptySegment,
    #[error("starts with `{0}`; a path starts with event, resource, resource_id or payload")]
    UnknownRoot(String),
    #[error("`{0}` is text and has no fields")]
    NoFields(&'static str),
    #[error("must have at most {MAX_PATH_DEPTH} segments after payload")]
    TooDeep,
}

/// A parsed path. Displays and serializes as the text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    source: String,
    root: Root,
    segments: Vec<Segment>,
}

/// What a path found: either one of the event's own text fields, or a value inside the payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Found<'a> {
    /// `event`, `resource` or `resource_id`.
    Text(&'a str),
    /// A value in the payload (possibly `null`: found, but null).
    Json(&'a Value),
}

impl Path {
    /// Parses `root(.segment)*`. `payload` alone names the whole payload.
    pub fn parse(source: &str) -> Result<Path, PathError> {
        if source.is_empty() {
            return Err(PathError::Empty);
        }
        if source.chars().count() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut parts = source.split('.');
        // `split` always yields at least one item.
        let first = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        if first.is_empty() || rest.iter().any(|s| s.is_empty()) {
            return Err(PathError::EmptySegment);
        }
        let root = match first {
            "event" => Root::Event,
            "resource" => Root::Resource,
            "resource_id" => Root::ResourceId,
            "payload" => Root::Payload,
            other => return Err(PathError::UnknownRoot(other.to_owned())),
        };
        if root != Root::Payload && !rest.is_empty() {
            return Err(PathError::NoFields(root.name()));
        }
        if rest.len() > MAX_PATH_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(Path {
            source: source.to_owned(),
            root,
            segments: rest.into_iter().map(Segment::new).collect(),
        })
    }

    /// The text this path was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Where the path starts.
    pub fn root(&self) -> Root {
        self.root
    }

    /// Looks the path up in an event. `None` means missing: no `resource_id`, an absent key, an index
    /// past the end, or a step into something that is not an object or array. A `null` in the payload
    /// is found (`Found::Json(&Value::Null)`); callers decide what null means.
    pub fn resolve<'a>(&self, ev: &EventView<'a>) -> Option<Found<'a>> {
        match self.root {
            Root::Event => Some(Found::Text(ev.event)),
            Root::Resource => Some(Found::Text(ev.resource)),
            Root::ResourceId => ev.resource_id.map(Found::Text),
            Root::Payload => {
                let mut at = ev.payload;
                for seg in &self.segments {
                    at = match at {
                        Value::Object(map) => map.get(&seg.key)?,
                        Value::Array(items) => items.get(seg.index?)?,
                        _ => return None,
                    };
                }
                Some(Found::Json(at))
            }
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Path {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}
