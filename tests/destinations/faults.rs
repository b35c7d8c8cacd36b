//! Each failure the account can produce, and the outcome it becomes.

use std::time::Duration;

use async_trait::async_trait;
use handoff::delivery::retry::Outcome;
use handoff::destinations::activecampaign::{AcDestination, AccountCache, CallGate, NoGate};
use handoff::destinations::net;
use handoff::domain::OutcomeCode;
use handoff::sandbox::{AccountOptions, Fault, SandboxConfig};
use serde_json::json;

use crate::support::{ACCT, Env, TOKEN, action, calls, event};

fn payload() -> serde_json::Value {
    json!({"email": "alex@northstar.io"})
}

fn transient(code: OutcomeCode) -> Outcome {
    Outcome::Transient {
        code,
        retry_after: None,
    }
}

#[tokio::test]
async fn a_json_503_without_retry_after_is_a_transient_server_error() {
    let env = Env::new().await;
    env.sandbox.inject_fault(ACCT, Fault::status(503));
    let r = env
        .run(&action(json!({"action": "sync_contact"})), &payload())
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::RejectedServerError));
    assert_eq!(r.code, OutcomeCode::RejectedServerError);
    assert_eq!(r.http_status, Some(503));
    assert_eq!(r.calls.len(), 1);
    assert!(r.error.as_deref().unwrap().contains("503"), "{r:?}");
}

#[tokio::test]
async fn a_503_with_retry_after_is_throttling() {
    let env = Env::new().await;
    env.sandbox
        .inject_fault(ACCT, Fault::status(503).with_retry_after(7));
    let r = env
        .run(
            &action(json!({"action": "add_tag", "tag": "VIP"})),
            &payload(),
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Throttled {
            retry_after: Some(7)
        }
    );
    assert_eq!(r.code, OutcomeCode::RateLimited);
    assert_eq!(r.http_status, Some(503));
    assert_eq!(r.calls.len(), 1, "the attempt stops at the first throttle");
}

#[tokio::test]
async fn an_html_504_is_a_transient_server_error_with_the_page_in_the_excerpt() {
    let env = Env::new().await;
    env.sandbox.inject_fault(ACCT, Fault::html(504));
    let r = env
        .run(
            &action(json!({"action": "add_tag", "tag": "VIP"})),
            &payload(),
        )
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::RejectedServerError));
    assert_eq!(r.http_status, Some(504));
    let excerpt = &r.calls[0].response_excerpt;
    assert!(
        excerpt.contains("<title>") && excerpt.contains("504"),
        "{excerpt}"
    );
    assert!(excerpt.len() <= 2048);
    assert!(r.error.as_deref().unwrap().contains("504"), "{r:?}");
}

#[tokio::test]
async fn a_server_error_after_the_sync_reports_the_last_calls_status() {
    let env = Env::new().await;
    let vip = env.sandbox.seed_tag(ACCT, "VIP");
    // The sync goes through; the attach gets the 502.
    env.sandbox
        .inject_fault(ACCT, Fault::latency(Duration::ZERO));
    env.sandbox.inject_fault(ACCT, Fault::html(502));
    let r = env
        .run(&action(json!({"action": "add_tag", "id": vip})), &payload())
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::RejectedServerError));
    assert_eq!(
        r.calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Some(201), Some(502)]
    );
    assert_eq!(r.http_status, Some(502));
}

#[tokio::test]
async fn a_429_with_retry_after_is_throttling() {
    let env = Env::new().await;
    env.sandbox
        .inject_fault(ACCT, Fault::status(429).with_retry_after(3));
    let r = env
        .run(&action(json!({"action": "sync_contact"})), &payload())
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Throttled {
            retry_after: Some(3)
        }
    );
    assert_eq!(r.code, OutcomeCode::RateLimited);
    assert_eq!(r.http_status, Some(429));
}

#[tokio::test]
async fn the_accounts_own_rate_limit_ends_the_attempt_as_throttled() {
    let env = Env::with(
        SandboxConfig::default(),
        AccountOptions::named(ACCT).token(TOKEN).rate_limit(1),
        Duration::from_secs(5),
    )
    .await;
    let vip = env.sandbox.seed_tag(ACCT, "VIP");
    let r = env
        .run(&action(json!({"action": "add_tag", "id": vip})), &payload())
        .await;
    let Outcome::Throttled {
        retry_after: Some(secs),
    } = r.outcome
    else {
        panic!("expected throttling with Retry-After: {r:?}");
    };
    assert!(secs >= 1);
    assert_eq!(
        r.calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Some(201), Some(429)]
    );
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_failure() {
    let env = Env::new().await;
    let r = env
        .dest
        .perform(
            &env.api_url,
            "not-the-token".to_owned().into(),
            &action(json!({"action": "add_tag", "tag": "VIP"})),
            &event(&payload()),
            &NoGate,
        )
        .await;
    assert_eq!(r.outcome, Outcome::AuthFailed);
    assert_eq!(r.code, OutcomeCode::AuthFailed);
    assert_eq!(r.http_status, Some(403));
    assert_eq!(r.calls.len(), 1);
    assert!(env.sandbox.state(ACCT).contacts.is_empty());
}

#[tokio::test]
async fn an_email_the_account_calls_invalid_is_a_permanent_client_error() {
    let env = Env::new().await;
    // Plausible enough to be sent, but ActiveCampaign (and the sandbox) want a dotted domain.
    let r = env
        .run(
            &action(json!({"action": "add_tag", "tag": "VIP"})),
            &json!({"email": "alex@northstar"}),
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::RejectedClientError
        }
    );
    assert_eq!(r.http_status, Some(422));
    assert_eq!(r.calls.len(), 1);
    assert_eq!(
        r.error.as_deref(),
        Some("ActiveCampaign answered 422: Contact Email Address is not valid.")
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_transient_network_error() {
    let env = Env::new().await;
    env.sandbox.inject_fault(ACCT, Fault::drop_connection());
    let r = env
        .run(&action(json!({"action": "sync_contact"})), &payload())
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::NetworkError), "{r:?}");
    assert_eq!(r.http_status, None);
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].status, None);
    assert!(!r.calls[0].response_excerpt.is_empty());
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_a_transient_timeout() {
    let env = Env::with(
        SandboxConfig::unlimited(),
        AccountOptions::named(ACCT).token(TOKEN),
        Duration::from_millis(300),
    )
    .await;
    env.sandbox
        .inject_fault(ACCT, Fault::latency(Duration::from_millis(2_000)));
    let started = std::time::Instant::now();
    let r = env
        .run(&action(json!({"action": "sync_contact"})), &payload())
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::Timeout), "{r:?}");
    assert_eq!(r.http_status, None);
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

struct Closed;

#[async_trait]
impl CallGate for Closed {
    async fn before_call(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_gate_that_says_stop_ends_the_attempt_before_any_call() {
    let env = Env::new().await;
    let r = env
        .run_gated(
            &action(json!({"action": "add_tag", "tag": "VIP"})),
            &payload(),
            &Closed,
        )
        .await;
    assert_eq!(r.outcome, transient(OutcomeCode::InternalError));
    assert!(r.calls.is_empty());
    assert!(env.take_log().is_empty());
}

#[tokio::test]
async fn a_private_address_is_refused_without_reaching_it_when_private_networks_are_not_allowed() {
    let env = Env::new().await;
    let strict = AcDestination::new(
        net::http_client(false, Duration::from_secs(2)),
        AccountCache::new(),
        Duration::from_secs(5),
        false,
    );
    let r = strict
        .perform(
            &env.api_url,
            TOKEN.to_owned().into(),
            &action(json!({"action": "sync_contact"})),
            &event(&payload()),
            &NoGate,
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::NetworkError
        }
    );
    assert_eq!(r.http_status, None);
    assert!(calls(&env.take_log()).is_empty());
}
