//! Sandbox accounts: each has a name (its path prefix), an API token, a rate limiter, a fault
//! queue, a request log and its own records. The registry holds them all.
//! (Their public option and settings types are in `options`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use super::data::Data;
use super::faults::{Fault, FaultKind, FaultQueue};
use super::options::{
    AccountInfo, AccountOptions, AccountSettings, AccountUpdate, SandboxError, ThrottleStatus,
};
use super::rate_limit::{Decision, SlidingWindow};
use super::request_log::{Entry, LoggedRequest, RequestLog};
use chrono::{DateTime, Utc};

/// Maps monotonic instants to wall-clock times from one anchor, so logged times differ exactly
/// as the limiter's instants do (a wall clock read separately could drift by the odd microsecond
/// and make a correct limiter look wrong).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// The wall-clock time of `at`.
    pub fn wall(&self, at: Instant) -> DateTime<Utc> {
        let since = at.saturating_duration_since(self.instant);
        self.wall + chrono::Duration::from_std(since).unwrap_or(chrono::Duration::zero())
    }

    /// Now, as a wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        self.wall(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct Settings {
    token: String,
    throttle: ThrottleStatus,
    restricted: bool,
}

/// One sandbox account.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    pub api_url: String,
    /// `<api_url>/api/3`, the base of the `links` in answers.
    pub api: String,
    pub clock: Clock,
    settings: RwLock<Settings>,
    limiter: Mutex<SlidingWindow>,
    faults: Mutex<FaultQueue>,
    data: Mutex<Data>,
    log: Mutex<RequestLog>,
}

/// Locks, ignoring poisoning: every critical section leaves the state consistent before anything
/// that can panic, and a test that panicked elsewhere must not take the sandbox down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Account {
    fn new(name: String, api_url: String, settings: Settings, limit: u32, clock: Clock) -> Self {
        Self {
            api: format!("{api_url}/api/3"),
            name,
            api_url,
            clock,
            settings: RwLock::new(settings),
            limiter: Mutex::new(SlidingWindow::new(limit)),
            faults: Mutex::new(FaultQueue::default()),
            data: Mutex::new(Data::default()),
            log: Mutex::new(RequestLog::default()),
        }
    }

    /// The account's records, locked.
    pub fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    /// Whether `token` is the account's current API token.
    pub fn token_matches(&self, token: &str) -> bool {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .token
            == token
    }

    /// The status throttled requests get.
    pub fn throttle_status(&self) -> ThrottleStatus {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .throttle
    }

    /// Whether list and field endpoints are forbidden.
    pub fn restricted(&self) -> bool {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .restricted
    }

    /// Asks the rate limiter about a request arriving now. The clock is read under the limiter's
    /// lock so concurrent requests reach it in time order.
    pub fn admit(&self) -> (Decision, Instant) {
        let mut limiter = lock(&self.limiter);
        let now = Instant::now();
        (limiter.try_acquire(now), now)
    }

    /// The configured limit (0 = off) and how many requests it would accept now.
    pub fn rate_limit_status(&self) -> (u32, Option<u32>) {
        let mut limiter = lock(&self.limiter);
        (limiter.limit(), limiter.remaining(Instant::now()))
    }

    /// Takes the fault for the next request, if any.
    pub fn take_fault(&self) -> Option<FaultKind> {
        lock(&self.faults).take()
    }

    /// Queues a fault.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    /// The faults still pending.
    pub fn pending_faults(&self) -> Vec<Fault> {
        lock(&self.faults).pending()
    }

    /// Forgets the pending faults.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Records a request.
    pub fn log(&self, entry: Entry) {
        lock(&self.log).push(entry);
    }

    /// The request log, ordered by time.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.log).entries()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        lock(&self.log).clear();
    }

    /// The account's settings.
    pub fn settings(&self) -> AccountSettings {
        let s = self.settings.read().unwrap_or_else(|e| e.into_inner());
        AccountSettings {
            name: self.name.clone(),
            token: s.token.clone(),
            api_url: self.api_url.clone(),
            rate_limit_per_second: lock(&self.limiter).limit(),
            throttle_status: s.throttle,
            restricted: s.restricted,
        }
    }

    /// Applies a settings change.
    pub fn update(&self, update: AccountUpdate) -> Result<AccountSettings, SandboxError> {
        if let Some(token) = &update.token {
            check_token(token)?;
        }
        {
            let mut s = self.settings.write().unwrap_or_else(|e| e.into_inner());
            if let Some(token) = update.token {
                s.token = token;
            }
            if let Some(throttle) = update.throttle_status {
                s.throttle = throttle;
            }
            if let Some(restricted) = update.restricted {
                s.restricted = restricted;
            }
        }
        if let Some(limit) = update.rate_limit_per_second {
            lock(&self.limiter).set_limit(limit);
        }
        Ok(self.settings())
    }

    /// Seeds a tag; a name taken in any letter case (same type) is a conflict.
    pub fn seed_tag(
        &self,
        name: &str,
        tag_type: &str,
        description: &str,
    ) -> Result<u64, SandboxError> {
        self.data()
            .create_tag(name, tag_type, description, self.clock.now())
            .map_err(|_| SandboxError::Conflict(format!("a {tag_type} tag named {name:?} exists")))
    }

    /// Seeds a list (`stringid` defaults to a slug of the name).
    pub fn seed_list(&self, name: &str, stringid: Option<&str>) -> u64 {
        self.data().create_list(name, stringid, self.clock.now())
    }

    /// Seeds a custom field (`perstag` defaults to the upper-cased title, `kind` to `text`).
    pub fn seed_field(&self, title: &str, perstag: Option<&str>, kind: Option<&str>) -> u64 {
        self.data()
            .create_field(title, perstag, kind, self.clock.now())
    }

    /// Empties the account: records, faults, log and limiter history. Settings stay.
    pub fn reset(&self) {
        *lock(&self.data) = Data::default();
        self.clear_faults();
        self.clear_log();
        lock(&self.limiter).clear();
    }

    /// What a client needs to reach the account.
    pub fn info(&self) -> AccountInfo {
        let s = self.settings();
        AccountInfo {
            name: s.name,
            token: s.token,
            api_url: s.api_url,
        }
    }
}

/// Sandbox-wide defaults for options an account leaves out.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub rate_limit_per_second: u32,
    pub throttle_status: ThrottleStatus,
}

/// Every account of one sandbox.
#[derive(Debug)]
pub struct Registry {
    base_url: String,
    clock: Clock,
    defaults: Defaults,
    accounts: RwLock<HashMap<String, Arc<Account>>>,
    /// The accounts made at start, fully resolved (names and tokens), re-made by a reset.
    initial: Mutex<Vec<AccountOptions>>,
    generated: AtomicU64,
}

impl Registry {
    /// An empty registry serving accounts under `base_url` (`http://127.0.0.1:9100`).
    pub fn new(base_url: String, defaults: Defaults) -> Self {
        Self {
            base_url,
            clock: Clock::new(),
            defaults,
            accounts: RwLock::new(HashMap::new()),
            initial: Mutex::new(Vec::new()),
            generated: AtomicU64::new(0),
        }
    }

    /// The listener's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Creates the accounts a reset brings back.
    pub fn create_initial(
        &self,
        options: Vec<AccountOptions>,
    ) -> Result<Vec<AccountInfo>, SandboxError> {
        let mut infos = Vec::new();
        for opts in options {
            let info = self.create(opts.clone())?;
            lock(&self.initial).push(AccountOptions {
                name: Some(info.name.clone()),
                token: Some(info.token.clone()),
                ..opts
            });
            infos.push(info);
        }
        Ok(infos)
    }

    /// Creates an account.
    pub fn create(&self, opts: AccountOptions) -> Result<AccountInfo, SandboxError> {
        if let Some(name) = &opts.name {
            check_name(name)?;
        }
        if let Some(token) = &opts.token {
            check_token(token)?;
        }
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        let name = match opts.name {
            Some(name) if accounts.contains_key(&name) => {
                return Err(SandboxError::AccountExists(name));
            }
            Some(name) => name,
            None => loop {
                let n = self.generated.fetch_add(1, Ordering::Relaxed) + 1;
                let name = format!("account-{n}");
                if !accounts.contains_key(&name) {
                    break name;
                }
            },
        };
        let token = opts.token.unwrap_or_else(random_token);
        let api_url = format!("{}/{name}", self.base_url);
        let account = Account::new(
            name.clone(),
            api_url,
            Settings {
                token,
                throttle: opts
                    .throttle_status
                    .unwrap_or(self.defaults.throttle_status),
                restricted: opts.restricted,
            },
            opts.rate_limit_per_second
                .unwrap_or(self.defaults.rate_limit_per_second),
            self.clock,
        );
        let info = account.info();
        accounts.insert(name, Arc::new(account));
        Ok(info)
    }

    /// The account with this name.
    pub fn get(&self, name: &str) -> Result<Arc<Account>, SandboxError> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownAccount(name.to_string()))
    }

    /// Every account's settings, by name.
    pub fn list(&self) -> Vec<AccountSettings> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<AccountSettings> = accounts.values().map(|a| a.settings()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Removes an account.
    pub fn remove(&self, name: &str) -> Result<(), SandboxError> {
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| SandboxError::UnknownAccount(name.to_string()))
    }

    /// Back to the state right after start: only the initial accounts, empty, with their
    /// original names, tokens and options.
    pub fn reset(&self) {
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let initial = lock(&self.initial).clone();
        for opts in initial {
            // Names and tokens were valid and unique when first created, and the map is empty.
            self.create(opts).expect("initial accounts re-create");
        }
    }
}

fn check_name(name: &str) -> Result<(), SandboxError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with("__")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Invalid(format!(
            "account name {name:?} must be 1–64 of [A-Za-z0-9_-] and not start with \"__\""
        )))
    }
}

fn check_token(token: &str) -> Result<(), SandboxError> {
    let ok = !token.is_empty() && token.len() <= 256 && token.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Invalid(
            "a token is 1–256 visible ASCII characters".into(),
        ))
    }
}

/// 64 hex digits, like an ActiveCampaign API key.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::options::DEMO_TOKEN;

    fn registry() -> Registry {
        Registry::new(
            "http://127.0.0.1:9".into(),
            Defaults {
                rate_limit_per_second: 5,
                throttle_status: ThrottleStatus::TooManyRequests,
            },
        )
    }

    #[test]
    fn names_are_unique_and_generated_when_absent() {
        let r = registry();
        let a = r.create(AccountOptions::named("acme")).unwrap();
        assert_eq!(a.api_url, "http://127.0.0.1:9/acme");
        assert_eq!(a.token.len(), 64);
        assert_eq!(
            r.create(AccountOptions::named("acme")),
            Err(SandboxError::AccountExists("acme".into()))
        );
        let b = r.create(AccountOptions::default()).unwrap();
        assert_eq!(b.name, "account-1");
        for bad in ["", "__sandbox", "a/b", "a b"] {
            assert!(r.create(AccountOptions::named(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_reset_brings_back_only_the_initial_accounts_with_their_tokens() {
        let r = registry();
        let initial = r
            .create_initial(vec![AccountOptions::named("demo").token(DEMO_TOKEN)])
            .unwrap();
        r.create(AccountOptions::named("extra")).unwrap();
        r.get("demo")
            .unwrap()
            .update(AccountUpdate {
                token: Some("changed".into()),
                ..AccountUpdate::default()
            })
            .unwrap();
        r.reset();
        assert!(r.get("extra").is_err());
        assert_eq!(r.get("demo").unwrap().info(), initial[0]);
    }
}
