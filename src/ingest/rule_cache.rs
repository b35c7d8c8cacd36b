//! The per-workspace rule cache behind fan-out at ingest. Rules are loaded on first use and compiled once;
//! every change to a workspace's rules or connections arrives through `Store::rule_changes` (PostgreSQL
//! LISTEN/NOTIFY, so every node sharing the database hears it) and drops that workspace's entry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::{NewRuleEvent, RuleChange, RuleEventId, WorkspaceId};
use crate::rules::{CompiledRule, EventView, parse_conditions, parse_metadata};
use crate::storage::{Result, Store};

/// A compiled rule and what a rule event needs to copy from it.
#[derive(Clone, Debug)]
pub struct CachedRule {
    pub compiled: CompiledRule,
    pub integration_type: String,
}

#[derive(Default)]
struct State {
    rules: HashMap<WorkspaceId, Arc<Vec<CachedRule>>>,
    /// Bumped by every invalidation, so a load that raced with a change is not cached.
    generation: u64,
}

/// Shared by all ingest requests of a node.
#[derive(Clone)]
pub struct RuleCache {
    store: Arc<dyn Store>,
    state: Arc<RwLock<State>>,
}

impl RuleCache {
    /// A cache over `store`, with a task that applies the store's change feed until the feed ends.
    pub async fn start(store: Arc<dyn Store>) -> Result<Self> {
        let cache = Self {
            store: store.clone(),
            state: Arc::default(),
        };
        let mut changes = store.rule_changes().await?;
        let state = cache.state.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                let mut s = state.write().unwrap_or_else(|p| p.into_inner());
                match change {
                    RuleChange::Workspace(ws) => {
                        s.generation += 1;
                        s.rules.remove(&ws);
                    }
                    RuleChange::All => {
                        s.generation += 1;
                        s.rules.clear();
                    }
                    RuleChange::DeliveriesDue => continue,
                }
                tracing::debug!(?change, "rule cache invalidated");
            }
        });
        Ok(cache)
    }

    /// Drops a workspace's rules on this node at once. Handlers call it after their own changes, so
    /// the next event on this node sees them without waiting for the change feed's round trip (other
    /// nodes learn through the feed).
    pub fn invalidate(&self, workspace: WorkspaceId) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.generation += 1;
        s.rules.remove(&workspace);
    }

    /// The workspace's rules, from memory or loaded and compiled now.
    pub async fn rules(&self, workspace: WorkspaceId) -> Result<Arc<Vec<CachedRule>>> {
        let generation = {
            let s = self.state.read().unwrap_or_else(|p| p.into_inner());
            if let Some(rules) = s.rules.get(&workspace) {
                return Ok(rules.clone());
            }
            s.generation
        };
        let loaded = self.store.workspace_rules(workspace).await?;
        let compiled: Vec<CachedRule> = loaded
            .into_iter()
            .filter_map(|r| {
                let conditions = parse_conditions(&r.conditions);
                let action = parse_metadata(&r.metadata);
                match (conditions, action) {
                    (Ok(conditions), Ok(action)) => Some(CachedRule {
                        compiled: CompiledRule {
                            id: r.id,
                            workspace_id: r.workspace_id,
                            connection_id: r.connection_id,
                            event: r.event,
                            resource: r.resource,
                            resource_id: r.resource_id,
                            conditions,
                            action,
                            active: r.active,
                        },
                        integration_type: r.integration_type,
                    }),
                    _ => {
                        // Rules are validated when saved; a stored one that no longer parses is skipped, loudly.
                        tracing::error!(rule.id = %r.id, "stored rule does not parse; skipped");
                        None
                    }
                }
            })
            .collect();
        let rules = Arc::new(compiled);
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        if s.generation == generation {
            s.rules.insert(workspace, rules.clone());
        }
        Ok(rules)
    }

    /// One new rule event per active rule of the workspace that matches the event.
    pub async fn plan(
        &self,
        workspace: WorkspaceId,
        event: &EventView<'_>,
    ) -> Result<Vec<NewRuleEvent>> {
        let rules = self.rules(workspace).await?;
        Ok(rules
            .iter()
            .filter(|r| r.compiled.active && r.compiled.matches(event))
            .map(|r| NewRuleEvent {
                id: RuleEventId::new_v7(),
                rule_id: r.compiled.id,
                connection_id: r.compiled.connection_id,
                integration_type: r.integration_type.clone(),
            })
            .collect())
    }
}
