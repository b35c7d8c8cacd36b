//! A sandbox account and a destination pointed at it, plus builders for actions and events.

use std::time::Duration;

use handoff::destinations::activecampaign::{
    AcDestination, AccountCache, ActionResult, CallGate, NoGate,
};
use handoff::destinations::net;
use handoff::rules::{Action, EventView, parse_metadata};
use handoff::sandbox::{
    AccountInfo, AccountOptions, LoggedRequest, Sandbox, SandboxConfig, SandboxHandle,
};
use serde_json::Value;
use url::Url;

/// The account name every test uses.
pub const ACCT: &str = "acme";
/// A token distinctive enough to search history for.
pub const TOKEN: &str = "tok-SECRET-5f2d9c1e-never-in-history";

/// A sandbox (rate limit off) with one account, and a destination for it.
pub struct Env {
    pub sandbox: SandboxHandle,
    pub account: AccountInfo,
    pub dest: AcDestination,
    pub api_url: Url,
}

impl Env {
    pub async fn new() -> Self {
        Self::with(
            SandboxConfig::unlimited(),
            AccountOptions::named(ACCT).token(TOKEN),
            Duration::from_secs(5),
        )
        .await
    }

    /// A sandbox and account made as given; each call bounded by `timeout`.
    pub async fn with(config: SandboxConfig, options: AccountOptions, timeout: Duration) -> Self {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let account = sandbox.create_account(options);
        let api_url = Url::parse(&account.api_url).expect("api_url parses");
        let dest = AcDestination::new(
            net::http_client(true, Duration::from_secs(2)),
            AccountCache::new(),
            timeout,
            true,
        );
        Self {
            sandbox,
            account,
            dest,
            api_url,
        }
    }

    /// Runs `action` for `payload` with the account's token and no gate.
    pub async fn run(&self, action: &Action, payload: &Value) -> ActionResult {
        self.run_gated(action, payload, &NoGate).await
    }

    pub async fn run_gated(
        &self,
        action: &Action,
        payload: &Value,
        gate: &dyn CallGate,
    ) -> ActionResult {
        self.dest
            .perform(
                &self.api_url,
                self.account.token.clone().into(),
                action,
                &event(payload),
                gate,
            )
            .await
    }

    /// The request log, emptied afterwards.
    pub fn take_log(&self) -> Vec<LoggedRequest> {
        let log = self.sandbox.request_log(ACCT);
        self.sandbox.clear_request_log(ACCT);
        log
    }

    /// A direct call to the account's API (to change state behind the destination's back).
    pub async fn api(&self, method: reqwest::Method, path: &str) -> u16 {
        reqwest::Client::new()
            .request(method, format!("{}/api/3{path}", self.account.api_url))
            .header("Api-Token", &self.account.token)
            .send()
            .await
            .expect("sandbox answers")
            .status()
            .as_u16()
    }
}

/// An event borrowing `payload`.
pub fn event(payload: &Value) -> EventView<'_> {
    EventView {
        event: "page.completed",
        resource: "global",
        resource_id: None,
        payload,
    }
}

/// An action from rule metadata JSON.
pub fn action(metadata: Value) -> Action {
    parse_metadata(&metadata).expect("valid metadata")
}

/// `METHOD path` of each logged request, with the query.
pub fn calls(log: &[LoggedRequest]) -> Vec<String> {
    log.iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// `METHOD path` of each call in a result.
pub fn result_calls(r: &ActionResult) -> Vec<String> {
    r.calls
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}
