//! Send Test Event: one delivery of a rule's action, now, against the real destination, while the
//! API client waits (bounded), recorded as a test. It changes nothing else: a rejected key does
//! not park the connection, and no retry follows.

use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::destinations::activecampaign::{AcDestination, ActionResult, NoGate};
use crate::domain::{AttemptId, AttemptRecord, DeliveryStatus, OutcomeCode, Rule};
use crate::rules::{EventView, parse_metadata};

/// What one test delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct TestOutcome {
    /// `is_test`, numbered 1; the caller fills in the ids it stores it under.
    pub attempt: AttemptRecord,
    /// `completed` when delivered, else `failed`.
    pub status: DeliveryStatus,
    /// The destination did not answer within the bound.
    pub timed_out: bool,
}

/// Performs `rule`'s action for `event` through `destination` with `api_key`, within `bound`.
/// The call does not wait on the account's rate limiter (a test is one delivery, made while a
/// person waits); a throttled test shows `rate_limited` like any other outcome.
pub async fn send(
    destination: &AcDestination,
    rule: &Rule,
    api_url: &url::Url,
    api_key: SecretString,
    event: &EventView<'_>,
    bound: Duration,
    mut attempt: AttemptRecord,
) -> TestOutcome {
    attempt.started_at = crate::domain::now();
    let clock = Instant::now();
    let (result, timed_out) = match parse_metadata(&rule.metadata) {
        Err(_) => (
            failure(OutcomeCode::InternalError, "the stored rule does not parse"),
            false,
        ),
        Ok(action) => {
            let call = destination.perform(api_url, api_key, &action, event, &NoGate);
            match tokio::time::timeout(bound, call).await {
                Ok(result) => (result, false),
                Err(_) => (
                    failure(
                        OutcomeCode::Timeout,
                        "the destination did not answer within the test's time bound",
                    ),
                    true,
                ),
            }
        }
    };
    attempt.id = AttemptId::new_v7();
    attempt.attempt_number = 1;
    attempt.duration_ms = clock.elapsed().as_millis() as i64;
    attempt.outcome_code = result.code;
    attempt.http_status = result.http_status;
    attempt.error = result.error;
    attempt.calls = result.calls;
    attempt.is_test = true;
    let status = if result.code == OutcomeCode::Delivered {
        DeliveryStatus::Completed
    } else {
        DeliveryStatus::Failed
    };
    TestOutcome {
        attempt,
        status,
        timed_out,
    }
}

fn failure(code: OutcomeCode, error: &str) -> ActionResult {
    ActionResult {
        outcome: crate::delivery::retry::Outcome::Permanent { code },
        code,
        http_status: None,
        error: Some(error.to_owned()),
        calls: Vec::new(),
    }
}
