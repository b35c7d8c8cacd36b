//! Name templates such as `onboarding-step-{{payload.sequence_step}}-done`: parsed when a rule is saved,
//! rendered per event. A field that cannot be rendered is an error naming it, never an empty string or
//! a guess, because a wrong tag name on a real contact is worse than a recorded failure.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::matching::EventView;
use super::path::{Found, Path, PathError};

/// Longest template accepted, in characters.
pub const MAX_TEMPLATE_LEN: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Path),
}

/// A parsed template: literal text and `{{ path }}` placeholders (spaces inside the braces optional).
///
/// Braces are reserved: a lone `{` or `}` outside a placeholder is a parse error rather than literal
/// text, so a typo such as `step-{payload.step}` is caught when the rule is saved instead of
/// creating a tag literally named that. Displays and serializes as its source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template was rejected. Positions count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateParseError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {MAX_TEMPLATE_LEN} characters")]
    TooLong,
    #[error(
        "has an unbalanced brace at character {at}; write placeholders as {{{{ payload.field }}}}"
    )]
    Unbalanced { at: usize },
    #[error("has an empty placeholder at character {at}")]
    EmptyPlaceholder { at: usize },
    #[error("has a bad path `{path}` at character {at}: it {reason}")]
    BadPath {
        at: usize,
        path: String,
        reason: PathError,
    },
}

/// Why a template could not be rendered for an event. The delivery records it as a `mapping_error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template field {path} is missing from the event")]
    Missing { path: String },
    #[error("template field {path} is null")]
    Null { path: String },
    #[error("template field {path} is {kind}, not text, a number or a boolean")]
    NotScalar { path: String, kind: &'static str },
    #[error("template rendered to a blank name")]
    Blank,
}

impl TemplateError {
    /// The path that could not be rendered, if the error is about one field.
    pub fn path(&self) -> Option<&str> {
        match self {
            TemplateError::Missing { path }
            | TemplateError::Null { path }
            | TemplateError::NotScalar { path, .. } => Some(path),
            TemplateError::Blank => None,
        }
    }
}

/// The 1-based character position of byte offset `at` in `s`.
fn char_pos(s: &str, at: usize) -> usize {
    s[..at].chars().count() + 1
}

impl Template {
    /// Parses a template.
    pub fn parse(source: &str) -> Result<Template, TemplateParseError> {
        if source.trim().is_empty() {
            return Err(TemplateParseError::Blank);
        }
        if source.chars().count() > MAX_TEMPLATE_LEN {
            return Err(TemplateParseError::TooLong);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while !rest.is_empty() {
            let offset = source.len() - rest.len();
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some(close) = after_open.find("}}") else {
                    return Err(TemplateParseError::Unbalanced {
                        at: char_pos(source, offset),
                    });
                };
                let inner = &after_open[..close];
                if let Some(brace) = inner.find(['{', '}']) {
                    return Err(TemplateParseError::Unbalanced {
                        at: char_pos(source, offset + 2 + brace),
                    });
                }
                let at = char_pos(source, offset);
                let text = inner.trim();
                if text.is_empty() {
                    return Err(TemplateParseError::EmptyPlaceholder { at });
                }
                let path = Path::parse(text).map_err(|reason| TemplateParseError::BadPath {
                    at,
                    path: text.to_owned(),
                    reason,
                })?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(path));
                rest = &after_open[close + 2..];
            } else {
                let mut chars = rest.chars();
                let c = chars.next().unwrap_or_default();
                if c == '{' || c == '}' {
                    return Err(TemplateParseError::Unbalanced {
                        at: char_pos(source, offset),
                    });
                }
                literal.push(c);
                rest = chars.as_str();
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text this template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The paths of the placeholders, in order.
    pub fn fields(&self) -> impl Iterator<Item = &Path> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(path) => Some(path),
            Part::Literal(_) => None,
        })
    }

    /// Renders the template for an event. Strings render as they are, integers as integers (`3` →
    /// `"3"`), other numbers in their JSON form (`2.5`), booleans as `true`/`false`. A missing field,
    /// `null`, an object or an array is an error naming the path; so is a result that is blank,
    /// because it would name no tag or list.
    pub fn render(&self, ev: &EventView<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(path) => {
                    let name = || path.as_str().to_owned();
                    match path.resolve(ev) {
                        None => return Err(TemplateError::Missing { path: name() }),
                        Some(Found::Text(s)) => out.push_str(s),
                        Some(Found::Json(v)) => match v {
                            Value::String(s) => out.push_str(s),
                            // serde_json prints integers without a fraction and floats in
                            // shortest round-trip form, which is the JSON form the client sent.
                            Value::Number(n) => out.push_str(&n.to_string()),
                            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                            Value::Null => return Err(TemplateError::Null { path: name() }),
                            Value::Object(_) => {
                                return Err(TemplateError::NotScalar {
                                    path: name(),
                                    kind: "an object",
                                });
                            }
                            Value::Array(_) => {
                                return Err(TemplateError::NotScalar {
                                    path: name(),
                                    kind: "an array",
                                });
                            }
                        },
                    }
                }
            }
        }
        if out.trim().is_empty() {
            return Err(TemplateError::Blank);
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}
