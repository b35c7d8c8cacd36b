//! Rules: conditions, templates and matching. Pure code, no I/O.
//!
//! A rule is saved once and matched against every event of its workspace, so everything a client
//! sends is parsed and checked when the rule is saved ([`parse_conditions`], [`parse_metadata`], both
//! collecting every problem as a [`FieldError`] naming the field as sent), and matching an event
//! ([`CompiledRule::matches`], [`matching()`]) does no parsing and cannot fail. Only rendering a name
//! template can fail per event ([`TemplateError`]), and the delivery records that as a mapping error.
//!
//! - [`path`]: dotted paths into an event (`payload.items.0.sku`);
//! - [`condition`]: the operators and their typed semantics;
//! - [`template`]: `{{ path }}` name templates;
//! - [`action`]: `metadata` (action and target);
//! - [`matching`](mod@matching): compiled rules and the per-event match.

pub mod action;
pub mod condition;
pub mod matching;
pub mod path;
pub mod template;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use action::{Action, ResolvedTarget, Target, parse_metadata};
pub use condition::{Condition, Literal, Op, parse_conditions};
pub use matching::{CompiledRule, EventView, matching};
pub use path::{Found, Path, PathError};
pub use template::{Template, TemplateError, TemplateParseError};

/// One problem with a client's field, in the shape of the API's `error.data` items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field as the client sent it, e.g. `conditions[1].op` or `metadata.tag`.
    pub param: String,
    /// What is wrong, as a phrase that follows the field name (`"is required"`).
    pub msg: String,
}

impl FieldError {
    /// A problem with `param`.
    pub fn new(param: impl Into<String>, msg: impl Into<String>) -> Self {
        FieldError {
            param: param.into(),
            msg: msg.into(),
        }
    }
}
