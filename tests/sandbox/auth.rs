//! `Api-Token` authentication: 403, not 401, for a missing, wrong or rotated token.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn;

#[tokio::test]
async fn a_missing_or_wrong_token_is_a_403_forbidden() {
    let t = spawn().await;
    for token in [None, Some("wrong"), Some("")] {
        let r =
            t.ac.try_send(Method::GET, "/tags", None, token)
                .await
                .unwrap();
        assert_eq!(r.status, 403, "{token:?}");
        assert_eq!(r.body, json!({ "message": "Forbidden" }), "{token:?}");
    }
    assert_eq!(t.ac.get("/tags").await.status, 200);
}

#[tokio::test]
async fn a_rotated_token_turns_the_old_one_away() {
    let t = spawn().await;
    t.sandbox.set_token("acme", "rotated-token");
    let r = t.ac.get("/tags").await;
    assert_eq!(r.status, 403);
    let r =
        t.ac.try_send(Method::GET, "/tags", None, Some("rotated-token"))
            .await
            .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn requests_turned_away_do_not_change_state_and_are_logged() {
    let t = spawn().await;
    let r =
        t.ac.try_send(
            Method::POST,
            "/contact/sync",
            Some(json!({ "contact": { "email": "a@b.co" } })),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(t.sandbox.state("acme").contacts.is_empty());
    let log = t.sandbox.request_log("acme");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(403));
    assert_eq!(log[0].path, "/api/3/contact/sync");
}

#[tokio::test]
async fn an_unknown_account_or_endpoint_is_a_404() {
    let t = spawn().await;
    let r = reqwest::get(format!("{}/nobody/api/3/tags", t.sandbox.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = t.ac.get("/no/such/endpoint").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, json!({ "message": "Not Found" }));
}
