//! Injected faults: status answers with JSON or Cloudflare HTML bodies, latency, dropped
//! connections; applied in order, before authentication and the rate limit.

use std::time::{Duration, Instant};

use handoff::sandbox::{AccountOptions, Fault, SandboxConfig};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn, spawn_with};

#[tokio::test]
async fn a_json_5xx_fault_answers_the_next_n_requests_then_stops() {
    let t = spawn().await;
    t.sandbox
        .inject_fault("acme", Fault::status(503).with_retry_after(7).times(2));
    for _ in 0..2 {
        let r = t.ac.get("/tags").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body, json!({ "message": "Service Unavailable" }));
        assert_eq!(r.header("retry-after"), Some("7"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_eq!(t.ac.get("/tags").await.status, 200);

    t.sandbox.inject_fault("acme", Fault::status(500));
    let r = t.ac.get("/tags").await;
    assert_eq!(r.status, 500);
    assert!(r.header("retry-after").is_none());
}

#[tokio::test]
async fn an_html_504_fault_looks_like_a_cloudflare_page() {
    let t = spawn().await;
    t.sandbox.inject_fault("acme", Fault::html(504));
    let r =
        t.ac.post("/contact/sync", json!({ "contact": { "email": "a@b.co" } }))
            .await;
    assert_eq!(r.status, 504);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text
            .contains("<title>acme.api-us1.com | 504: Gateway time-out</title>"),
        "{}",
        r.text
    );
    assert!(r.body.is_null(), "not JSON");
    assert!(
        t.sandbox.state("acme").contacts.is_empty(),
        "the request never reached the account"
    );
}

#[tokio::test]
async fn a_latency_fault_delays_the_answer_and_then_handles_the_request() {
    let t = spawn().await;
    t.sandbox
        .inject_fault("acme", Fault::latency(Duration::from_millis(300)));
    let started = Instant::now();
    let r =
        t.ac.post("/contact/sync", json!({ "contact": { "email": "a@b.co" } }))
            .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_an_answer() {
    let t = spawn().await;
    t.sandbox.inject_fault("acme", Fault::drop_connection());
    let err =
        t.ac.try_send(Method::GET, "/tags", None, Some(&t.ac.token))
            .await
            .expect_err("no answer");
    assert!(
        err.status().is_none(),
        "a connection error, not a status: {err:?}"
    );
    assert!(!err.is_timeout(), "{err:?}");

    assert_eq!(
        t.ac.get("/tags").await.status,
        200,
        "the next request is served"
    );
    let log = t.sandbox.request_log("acme");
    assert_eq!(log[0].status, None);
    assert_eq!(log[1].status, Some(200));
}

#[tokio::test]
async fn faults_apply_in_order_and_before_authentication() {
    let t = spawn().await;
    t.sandbox.inject_fault("acme", Fault::status(502));
    t.sandbox.inject_fault("acme", Fault::html(520));
    let r =
        t.ac.try_send(Method::GET, "/tags", None, None)
            .await
            .unwrap();
    assert_eq!(
        r.status, 502,
        "the edge answers before the token is checked"
    );
    assert_eq!(t.ac.get("/tags").await.status, 520);
    assert_eq!(
        t.ac.try_send(Method::GET, "/tags", None, None)
            .await
            .unwrap()
            .status,
        403
    );
    assert!(t.sandbox.pending_faults("acme").is_empty());
}

#[tokio::test]
async fn faulted_requests_do_not_count_against_the_rate_limit() {
    let t = spawn_with(SandboxConfig::default(), AccountOptions::named("acme")).await;
    t.sandbox.inject_fault("acme", Fault::status(500).times(3));
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(t.ac.get("/tags").await.status);
    }
    assert_eq!(statuses, [500, 500, 500, 200, 200, 200, 200, 200]);
}
