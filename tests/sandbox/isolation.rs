//! Two accounts on one sandbox never see each other's records, tokens, limits, faults or logs.

use handoff::sandbox::{AccountOptions, Fault, SandboxConfig};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Ac, spawn_with};

#[tokio::test]
async fn two_accounts_never_see_each_others_data() {
    let t = spawn_with(SandboxConfig::unlimited(), AccountOptions::named("acme")).await;
    let other_info = t.sandbox.create_account(AccountOptions::named("globex"));
    let other = Ac::new(&other_info);

    let contact = t.ac.sync("alex@northstar.io").await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    let list = t.sandbox.seed_list("acme", "Newsletter");
    t.ac.post(
        "/contactTags",
        json!({ "contactTag": { "contact": contact, "tag": tag } }),
    )
    .await;
    t.ac.post(
        "/contactLists",
        json!({ "contactList": { "contact": contact, "list": list, "status": 1 } }),
    )
    .await;

    let r = other.get("/contacts?email=alex%40northstar.io").await;
    assert_eq!(
        (r.status, r.body["meta"]["total"].clone()),
        (200, json!("0"))
    );
    assert_eq!(other.get(&format!("/contacts/{contact}")).await.status, 404);
    assert_eq!(other.get("/tags").await.body["meta"]["total"], "0");
    assert_eq!(other.get("/lists").await.body["meta"]["total"], "0");
    let r = other
        .post(
            "/contactTags",
            json!({ "contactTag": { "contact": contact, "tag": tag } }),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(other.get(&format!("/tags/{tag}")).await.status == 404);

    // The same email in the other account is a different contact.
    let r = other
        .post(
            "/contact/sync",
            json!({ "contact": { "email": "alex@northstar.io" } }),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(
        t.sandbox
            .contact_tags_by_email("globex", "alex@northstar.io")
            .is_empty()
    );
    assert_eq!(
        t.sandbox.contact_tags_by_email("acme", "alex@northstar.io"),
        ["VIP"]
    );
    assert!(
        t.sandbox
            .list_memberships_by_email("globex", "alex@northstar.io")
            .is_empty()
    );

    // One account's token is nothing to the other.
    let r = other
        .try_send(Method::GET, "/tags", None, Some(&t.account.token))
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // Each log holds only its own account's requests: 3 here, 8 there.
    assert_eq!(t.sandbox.request_log("acme").len(), 3);
    assert_eq!(t.sandbox.request_log("globex").len(), 8);
}

#[tokio::test]
async fn one_accounts_rate_limit_and_faults_leave_the_other_alone() {
    let t = spawn_with(SandboxConfig::default(), AccountOptions::named("acme")).await;
    let other = Ac::new(&t.sandbox.create_account(AccountOptions::named("globex")));
    for _ in 0..5 {
        assert_eq!(t.ac.get("/tags").await.status, 200);
    }
    assert_eq!(t.ac.get("/tags").await.status, 429);
    let r = other.get("/tags").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-remaining"), Some("4"));

    t.sandbox.inject_fault("acme", Fault::status(500).times(10));
    assert_eq!(other.get("/tags").await.status, 200);
    assert_eq!(t.sandbox.pending_faults("acme")[0].count, 10);
}
