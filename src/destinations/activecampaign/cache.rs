//! The process-wide account cache: per ActiveCampaign account (keyed by its `api_url`), tag name → id
//! and list name → id, matched case-insensitively as ActiveCampaign does. It is what makes the warm
//! path two calls. Bounded both per account and in the number of accounts, evicting the least recently
//! used entries in batches so that an insert stays cheap on average.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default cap on names remembered per account and kind (tags, lists).
pub const DEFAULT_NAMES_PER_ACCOUNT: usize = 10_000;
/// Default cap on accounts remembered.
pub const DEFAULT_ACCOUNTS: usize = 10_000;

/// Which collection a name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tag,
    List,
}

#[derive(Debug)]
struct Named {
    id: String,
    used: u64,
}

#[derive(Debug, Default)]
struct Account {
    tags: HashMap<String, Named>,
    lists: HashMap<String, Named>,
    used: u64,
}

impl Account {
    fn names(&mut self, kind: Kind) -> &mut HashMap<String, Named> {
        match kind {
            Kind::Tag => &mut self.tags,
            Kind::List => &mut self.lists,
        }
    }
}

#[derive(Debug)]
struct Inner {
    accounts: HashMap<String, Account>,
    /// A logical clock for recency: bumped on every read and write.
    tick: u64,
    max_accounts: usize,
    max_names: usize,
}

/// Tag and list ids by name, per account. Cheap to clone; all clones share the same maps, so every
/// worker of the process sees what any worker learned.
#[derive(Clone, Debug)]
pub struct AccountCache {
    inner: Arc<Mutex<Inner>>,
}

impl Default for AccountCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Names compare as ActiveCampaign's case-insensitive collation does (close enough: Unicode lower case).
fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Removes the least recently used tenth (at least one) of `map`, so inserts at the cap stay cheap.
fn evict<V>(map: &mut HashMap<String, V>, used: impl Fn(&V) -> u64) {
    let mut ticks: Vec<u64> = map.values().map(&used).collect();
    let drop = (ticks.len() / 10).max(1);
    if drop > ticks.len() {
        return;
    }
    let (_, cutoff, _) = ticks.select_nth_unstable(drop - 1);
    let cutoff = *cutoff;
    map.retain(|_, v| used(v) > cutoff);
}

impl AccountCache {
    /// A cache with the default caps.
    pub fn new() -> Self {
        Self::with_caps(DEFAULT_ACCOUNTS, DEFAULT_NAMES_PER_ACCOUNT)
    }

    /// A cache remembering at most `max_accounts` accounts and `max_names` names per account and kind.
    pub fn with_caps(max_accounts: usize, max_names: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                accounts: HashMap::new(),
                tick: 0,
                max_accounts: max_accounts.max(1),
                max_names: max_names.max(1),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent (each operation is a
        // single map update), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id cached for `name` (any letter case) in `account`.
    pub fn get(&self, account: &str, kind: Kind, name: &str) -> Option<String> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let acct = inner.accounts.get_mut(account)?;
        acct.used = tick;
        let entry = acct.names(kind).get_mut(&fold(name))?;
        entry.used = tick;
        Some(entry.id.clone())
    }

    /// Remembers `name` → `id` in `account`.
    pub fn put(&self, account: &str, kind: Kind, name: &str, id: &str) {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let (max_accounts, max_names) = (inner.max_accounts, inner.max_names);
        if !inner.accounts.contains_key(account) && inner.accounts.len() >= max_accounts {
            evict(&mut inner.accounts, |a| a.used);
        }
        let acct = inner.accounts.entry(account.to_owned()).or_default();
        acct.used = tick;
        let names = acct.names(kind);
        let key = fold(name);
        if !names.contains_key(&key) && names.len() >= max_names {
            evict(names, |n| n.used);
        }
        names.insert(
            key,
            Named {
                id: id.to_owned(),
                used: tick,
            },
        );
    }

    /// Forgets `name` in `account` if it still maps to `id` (a concurrent worker may already have
    /// stored a fresher id, which must survive).
    pub fn forget(&self, account: &str, kind: Kind, name: &str, id: &str) {
        let mut inner = self.lock();
        if let Some(acct) = inner.accounts.get_mut(account) {
            let names = acct.names(kind);
            let key = fold(name);
            if names.get(&key).is_some_and(|n| n.id == id) {
                names.remove(&key);
            }
        }
    }

    /// Forgets everything about `account` (e.g. when its connection is edited).
    pub fn forget_account(&self, account: &str) {
        self.lock().accounts.remove(account);
    }

    /// How many accounts are remembered.
    pub fn account_count(&self) -> usize {
        self.lock().accounts.len()
    }

    /// How many names of `kind` are remembered for `account`.
    pub fn name_count(&self, account: &str, kind: Kind) -> usize {
        self.lock()
            .accounts
            .get_mut(account)
            .map_or(0, |a| a.names(kind).len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_letter_case_and_kinds_are_separate() {
        let c = AccountCache::new();
        c.put("a", Kind::Tag, "Onboarding-Step-3-Done", "7");
        assert_eq!(
            c.get("a", Kind::Tag, "onboarding-step-3-DONE").as_deref(),
            Some("7")
        );
        assert_eq!(c.get("a", Kind::List, "onboarding-step-3-done"), None);
        assert_eq!(c.get("b", Kind::Tag, "onboarding-step-3-done"), None);
    }

    #[test]
    fn forget_only_drops_the_id_it_was_told_about() {
        let c = AccountCache::new();
        c.put("a", Kind::Tag, "VIP", "1");
        c.forget("a", Kind::Tag, "vip", "2");
        assert_eq!(c.get("a", Kind::Tag, "VIP").as_deref(), Some("1"));
        c.forget("a", Kind::Tag, "vip", "1");
        assert_eq!(c.get("a", Kind::Tag, "VIP"), None);
    }

    #[test]
    fn names_per_account_are_bounded_and_the_recently_used_survive() {
        let c = AccountCache::with_caps(10, 20);
        for i in 0..20 {
            c.put("a", Kind::Tag, &format!("t{i}"), &i.to_string());
        }
        // Touch t0 so it is the most recently used, then overflow.
        assert!(c.get("a", Kind::Tag, "t0").is_some());
        for i in 20..100 {
            c.put("a", Kind::Tag, &format!("t{i}"), &i.to_string());
            assert!(c.name_count("a", Kind::Tag) <= 20);
        }
        assert!(c.get("a", Kind::Tag, "t99").is_some());
        assert!(c.get("a", Kind::Tag, "t1").is_none());
    }

    #[test]
    fn accounts_are_bounded() {
        let c = AccountCache::with_caps(5, 10);
        for i in 0..50 {
            c.put(&format!("acct{i}"), Kind::List, "News", "1");
            assert!(c.account_count() <= 5);
        }
        assert_eq!(c.get("acct49", Kind::List, "news").as_deref(), Some("1"));
        c.forget_account("acct49");
        assert_eq!(c.get("acct49", Kind::List, "news"), None);
    }
}
