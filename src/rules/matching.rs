//! Matching events to rules: a rule compiled once from its stored form, and the per-event check of
//! event name, resource, resource id and conditions.

use serde_json::Value;

use super::action::Action;
use super::condition::Condition;
use crate::domain::{ConnectionId, RuleId, WorkspaceId};

/// The parts of an event that rules look at, borrowed from wherever the event lives.
#[derive(Clone, Copy, Debug)]
pub struct EventView<'a> {
    /// The event name, e.g. `page.completed`.
    pub event: &'a str,
    /// The resource, `"global"` when the client sent none.
    pub resource: &'a str,
    /// The resource id, if the client sent one.
    pub resource_id: Option<&'a str>,
    /// The payload (a JSON object for accepted events).
    pub payload: &'a Value,
}

/// A rule ready to be matched: its conditions and action already parsed, so matching an event does
/// no parsing and cannot fail.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledRule {
    pub id: RuleId,
    /// The workspace whose events the rule sees.
    pub workspace_id: WorkspaceId,
    /// The connection the action runs on.
    pub connection_id: ConnectionId,
    /// The event name the rule listens to; compared exactly (case-sensitive).
    pub event: String,
    /// `None` matches any resource; `Some` only an equal one.
    pub resource: Option<String>,
    /// `None` matches any resource id (or none); `Some` only an event with an equal one.
    pub resource_id: Option<String>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// What to do on the connection when the rule matches.
    pub action: Action,
    /// Inactive rules are kept but never matched by [`matching()`].
    pub active: bool,
}

impl CompiledRule {
    /// Whether the event matches the rule's event name, resource, resource id and every condition.
    ///
    /// `active` is deliberately not checked here, so that a test send can ask whether an inactive
    /// rule would match; [`matching()`] is the one that skips inactive rules. Nor is the workspace: the
    /// caller passes the rules of the event's workspace.
    pub fn matches(&self, ev: &EventView<'_>) -> bool {
        self.event == ev.event
            && self.resource.as_deref().is_none_or(|r| r == ev.resource)
            && self
                .resource_id
                .as_deref()
                .is_none_or(|r| Some(r) == ev.resource_id)
            && self.conditions.iter().all(|c| c.holds(ev))
    }
}

/// The active rules that match the event, in the order given.
pub fn matching<'r>(
    rules: &'r [CompiledRule],
    ev: &EventView<'_>,
) -> impl Iterator<Item = &'r CompiledRule> {
    rules.iter().filter(move |r| r.active && r.matches(ev))
}
