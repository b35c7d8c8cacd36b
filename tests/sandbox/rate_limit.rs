//! The per-account rate limit: a sliding one-second window, 429 (or 503) with `Retry-After`,
//! `RateLimit-*` headers on every answer.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use handoff::sandbox::{AccountOptions, SandboxConfig, ThrottleStatus};
use tokio::task::JoinSet;

use crate::helpers::{Reply, spawn, spawn_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_second_window_holds_more_than_five_accepted_requests() {
    let t = spawn_with(SandboxConfig::default(), AccountOptions::named("acme")).await;

    // A burst of 30 at once, then a steady stream for 1.3 s.
    let mut burst = JoinSet::new();
    for _ in 0..30 {
        let ac = t.ac.clone();
        burst.spawn(async move { ac.get("/tags").await });
    }
    let mut replies: Vec<Reply> = burst.join_all().await;
    assert_eq!(
        replies.iter().filter(|r| r.status == 200).count(),
        5,
        "exactly the limit gets through a burst"
    );
    let until = Instant::now() + Duration::from_millis(1300);
    while Instant::now() < until {
        replies.push(t.ac.get("/tags").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for r in &replies {
        assert_eq!(r.header("ratelimit-limit"), Some("5"));
        let remaining: u32 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
        assert!(remaining <= 5);
        match r.status {
            200 => {}
            429 => {
                let retry_after: u64 = r
                    .header("retry-after")
                    .expect("Retry-After")
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                assert_eq!(remaining, 0);
            }
            other => panic!("unexpected status {other}"),
        }
    }

    let log = t.sandbox.request_log("acme");
    assert_eq!(log.len(), replies.len());
    let accepted: Vec<_> = log
        .iter()
        .filter(|e| e.status != Some(429))
        .map(|e| e.at)
        .collect();
    for (i, start) in accepted.iter().enumerate() {
        let in_window = accepted[i..]
            .iter()
            .take_while(|&&at| at - *start < TimeDelta::seconds(1))
            .count();
        assert!(
            in_window <= 5,
            "{in_window} accepted within one second of {start}"
        );
    }
    assert!(
        accepted.len() >= 10,
        "the window slides: {} accepted",
        accepted.len()
    );
}

#[tokio::test]
async fn an_account_can_throttle_with_503_as_older_accounts_did() {
    let t = spawn_with(
        SandboxConfig::default(),
        AccountOptions::named("acme").throttle_status(ThrottleStatus::ServiceUnavailable),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = t.ac.get("/tags").await;
        if r.status == 503 {
            assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
}

#[tokio::test]
async fn the_limit_is_configurable_per_account_and_remaining_counts_down() {
    let t = spawn_with(
        SandboxConfig::default(),
        AccountOptions::named("acme").rate_limit(2),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = t.ac.get("/tags").await;
        seen.push((
            r.status,
            r.header("ratelimit-remaining").unwrap().to_string(),
        ));
    }
    assert_eq!(
        seen,
        [
            (200, "1".into()),
            (200, "0".into()),
            (429, "0".into()),
            (429, "0".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_limit_off_a_burst_all_gets_through_without_rate_limit_headers() {
    let t = spawn().await;
    let mut burst = JoinSet::new();
    for _ in 0..50 {
        let ac = t.ac.clone();
        burst.spawn(async move { ac.get("/tags").await });
    }
    for r in burst.join_all().await {
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn the_limit_can_be_changed_on_a_running_account() {
    let t = spawn_with(
        SandboxConfig::default(),
        AccountOptions::named("acme").rate_limit(1),
    )
    .await;
    assert_eq!(t.ac.get("/tags").await.status, 200);
    assert_eq!(t.ac.get("/tags").await.status, 429);
    t.sandbox.update_account(
        "acme",
        handoff::sandbox::AccountUpdate {
            rate_limit_per_second: Some(0),
            ..Default::default()
        },
    );
    assert_eq!(t.ac.get("/tags").await.status, 200);
}
