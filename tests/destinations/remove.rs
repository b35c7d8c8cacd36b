//! `remove_tag`: removal, and every "nothing to do" case delivered.

use handoff::delivery::retry::Outcome;
use serde_json::json;

use crate::support::{ACCT, Env, action, calls};

#[tokio::test]
async fn remove_tag_by_name_removes_only_that_tag() {
    let env = Env::new().await;
    let payload = json!({"email": "alex@northstar.io"});
    for name in ["VIP", "Trial"] {
        let add = action(json!({"action": "add_tag", "tag": name}));
        assert_eq!(env.run(&add, &payload).await.outcome, Outcome::Delivered);
    }
    env.take_log();

    let remove = action(json!({"action": "remove_tag", "tag": "vip"}));
    let r = env.run(&remove, &payload).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let log = calls(&env.take_log());
    assert_eq!(log.len(), 3, "the tag id came from the cache: {log:?}");
    assert_eq!(log[0], "GET /api/3/contacts?email=alex%40northstar.io");
    assert!(
        log[1].starts_with("GET /api/3/contacts/") && log[1].ends_with("/contactTags"),
        "{log:?}"
    );
    assert!(log[2].starts_with("DELETE /api/3/contactTags/"), "{log:?}");
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["Trial"]
    );
    assert_eq!(
        env.sandbox.state(ACCT).tags.len(),
        2,
        "the tag itself stays"
    );
}

#[tokio::test]
async fn remove_tag_for_an_unknown_contact_is_delivered_with_one_call() {
    let env = Env::new().await;
    env.sandbox.seed_tag(ACCT, "VIP");
    let remove = action(json!({"action": "remove_tag", "tag": "VIP"}));
    let r = env
        .run(&remove, &json!({"email": "ghost@northstar.io"}))
        .await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        ["GET /api/3/contacts?email=ghost%40northstar.io"]
    );
    assert!(env.sandbox.state(ACCT).contacts.is_empty());
}

#[tokio::test]
async fn remove_tag_for_a_tag_the_account_lacks_is_delivered_and_creates_no_tag() {
    let env = Env::new().await;
    let sync = action(json!({"action": "sync_contact"}));
    let payload = json!({"email": "alex@northstar.io"});
    assert_eq!(env.run(&sync, &payload).await.outcome, Outcome::Delivered);
    env.take_log();

    let remove = action(json!({"action": "remove_tag", "tag": "Never Made"}));
    let r = env.run(&remove, &payload).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        [
            "GET /api/3/contacts?email=alex%40northstar.io",
            "GET /api/3/tags?search=Never+Made&limit=100",
        ]
    );
    assert!(env.sandbox.state(ACCT).tags.is_empty());
}

#[tokio::test]
async fn remove_tag_by_id_when_the_contact_lacks_it_is_delivered_without_a_delete() {
    let env = Env::new().await;
    let vip = env.sandbox.seed_tag(ACCT, "VIP");
    let other = env.sandbox.seed_tag(ACCT, "Other");
    let payload = json!({"email": "alex@northstar.io"});
    let add = action(json!({"action": "add_tag", "id": other}));
    assert_eq!(env.run(&add, &payload).await.outcome, Outcome::Delivered);
    env.take_log();

    let remove = action(json!({"action": "remove_tag", "id": vip.to_string()}));
    let r = env.run(&remove, &payload).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let log = calls(&env.take_log());
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(!log.iter().any(|c| c.starts_with("DELETE")));
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["Other"]
    );
}

/// Removes the association behind the destination's back just before its delete goes out.
struct RemoveFirst {
    env_api: String,
    token: String,
    seen: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl handoff::destinations::activecampaign::CallGate for RemoveFirst {
    async fn before_call(&self) -> bool {
        if self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
            let status = reqwest::Client::new()
                .delete(format!("{}/api/3/contactTags/1", self.env_api))
                .header("Api-Token", &self.token)
                .send()
                .await
                .expect("sandbox answers")
                .status();
            assert_eq!(status, 200);
        }
        true
    }
}

#[tokio::test]
async fn remove_tag_whose_association_vanishes_before_the_delete_is_delivered() {
    let env = Env::new().await;
    let payload = json!({"email": "alex@northstar.io"});
    let add = action(json!({"action": "add_tag", "tag": "VIP"}));
    assert_eq!(env.run(&add, &payload).await.outcome, Outcome::Delivered);

    let gate = RemoveFirst {
        env_api: env.account.api_url.clone(),
        token: env.account.token.clone(),
        seen: Default::default(),
    };
    let remove = action(json!({"action": "remove_tag", "tag": "VIP"}));
    let r = env.run_gated(&remove, &payload, &gate).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.calls.len(), 3);
    assert_eq!(r.calls[2].method, "DELETE");
    assert_eq!(r.calls[2].status, Some(404));
    assert_eq!(r.http_status, Some(404));
    assert!(
        env.sandbox
            .contact_tags_by_email(ACCT, "alex@northstar.io")
            .is_empty()
    );
}
