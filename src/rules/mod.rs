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

pub use action::{Action, ResolvedTarget, Target, parse_metadata};
pub use condition::{Condition, Literal, Op, parse_conditions};
pub use matching::{CompiledRule, EventView, matching};
pub use path::{Found, Path, PathError};
pub use template::{Template, TemplateError, TemplateParseError};

/// One problem with a client's field (shared with the HTTP edge's error shape).
pub use crate::domain::FieldError;
