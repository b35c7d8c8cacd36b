//! `add_tag` and `sync_contact`: state, call budgets, case-insensitive matches, the creation race,
//! and a cached tag id that went stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use handoff::delivery::retry::Outcome;
use handoff::destinations::activecampaign::CallGate;
use handoff::domain::OutcomeCode;
use reqwest::Method;
use serde_json::json;
use tokio::sync::Barrier;

use crate::support::{ACCT, Env, action, calls, result_calls};

#[tokio::test]
async fn add_tag_by_name_creates_the_tag_then_the_warm_path_is_exactly_two_calls() {
    let env = Env::new().await;
    let tag = action(json!({"action": "add_tag", "tag": "Onboarding {{payload.step}}"}));

    let cold = env
        .run(&tag, &json!({"email": "alex@northstar.io", "step": 3}))
        .await;
    assert_eq!(cold.outcome, Outcome::Delivered, "{cold:?}");
    assert_eq!(cold.code, OutcomeCode::Delivered);
    assert_eq!(cold.error, None);
    assert_eq!(
        calls(&env.take_log()),
        [
            "POST /api/3/contact/sync",
            "GET /api/3/tags?search=Onboarding+3&limit=100",
            "POST /api/3/tags",
            "POST /api/3/contactTags",
        ]
    );
    assert_eq!(cold.calls.len(), 4);
    assert_eq!(cold.http_status, Some(201));
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["Onboarding 3"]
    );

    let warm = env
        .run(&tag, &json!({"email": "sam@northstar.io", "step": 3}))
        .await;
    assert_eq!(warm.outcome, Outcome::Delivered, "{warm:?}");
    assert_eq!(
        calls(&env.take_log()),
        ["POST /api/3/contact/sync", "POST /api/3/contactTags"]
    );
    assert_eq!(
        result_calls(&warm),
        [
            "POST /acme/api/3/contact/sync",
            "POST /acme/api/3/contactTags"
        ]
    );
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "sam@northstar.io"),
        ["Onboarding 3"]
    );
    assert_eq!(
        env.sandbox.state(ACCT).tags.len(),
        1,
        "the tag was created once"
    );
}

#[tokio::test]
async fn add_tag_matches_an_existing_tag_in_any_letter_case_without_creating_one() {
    let env = Env::new().await;
    env.sandbox.seed_tag(ACCT, "Onboarding-Step-3-Done");
    env.sandbox.seed_tag(ACCT, "Onboarding-Step-3-Done-Late");
    let tag = action(json!({"action": "add_tag", "tag": "onboarding-step-3-DONE"}));

    let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        [
            "POST /api/3/contact/sync",
            "GET /api/3/tags?search=onboarding-step-3-DONE&limit=100",
            "POST /api/3/contactTags",
        ]
    );
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["Onboarding-Step-3-Done"]
    );
    assert_eq!(env.sandbox.state(ACCT).tags.len(), 2, "no tag was created");

    // Another spelling hits the same cache entry.
    let again = action(json!({"action": "add_tag", "tag": "ONBOARDING-step-3-done"}));
    let r = env.run(&again, &json!({"email": "sam@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered);
    assert_eq!(r.calls.len(), 2);
}

#[tokio::test]
async fn add_tag_by_id_needs_no_lookup_and_a_repeat_is_harmless() {
    let env = Env::new().await;
    let id = env.sandbox.seed_tag(ACCT, "VIP");
    let tag = action(json!({"action": "add_tag", "id": id}));
    for _ in 0..2 {
        let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(
            calls(&env.take_log()),
            ["POST /api/3/contact/sync", "POST /api/3/contactTags"]
        );
    }
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["VIP"]
    );
}

#[tokio::test]
async fn add_tag_with_an_unknown_tag_id_fails_as_a_client_error() {
    let env = Env::new().await;
    let tag = action(json!({"action": "add_tag", "id": "999"}));
    let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::RejectedClientError
        }
    );
    assert_eq!(r.http_status, Some(404));
    assert!(
        r.error.as_deref().unwrap().contains("Tag not found"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_cached_tag_deleted_in_the_account_is_dropped_and_resolved_again_within_the_attempt() {
    let env = Env::new().await;
    let tag = action(json!({"action": "add_tag", "tag": "Trial"}));
    let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered);
    let old = env.sandbox.state(ACCT).tags[0].id;
    assert_eq!(env.api(Method::DELETE, &format!("/tags/{old}")).await, 200);
    env.take_log();

    let r = env.run(&tag, &json!({"email": "sam@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        [
            "POST /api/3/contact/sync",
            "POST /api/3/contactTags",
            "GET /api/3/tags?search=Trial&limit=100",
            "POST /api/3/tags",
            "POST /api/3/contactTags",
        ]
    );
    assert_eq!(r.calls[1].status, Some(404));
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "sam@northstar.io"),
        ["Trial"]
    );
    let tags = env.sandbox.state(ACCT).tags;
    assert_eq!(tags.len(), 1);
    assert_ne!(tags[0].id, old);
}

/// Lets each attempt's first `n` calls through only together with the other attempt's, so both
/// search before either creates.
struct Lockstep {
    barrier: Arc<Barrier>,
    seen: AtomicUsize,
    n: usize,
}

#[async_trait]
impl CallGate for Lockstep {
    async fn before_call(&self) -> bool {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.n {
            self.barrier.wait().await;
        }
        true
    }
}

#[tokio::test]
async fn two_attempts_creating_the_same_new_tag_end_with_one_tag_and_both_delivered() {
    let env = Env::new().await;
    let tag = action(json!({"action": "add_tag", "tag": "Launch Week"}));
    let barrier = Arc::new(Barrier::new(2));
    let gate = || Lockstep {
        barrier: barrier.clone(),
        seen: AtomicUsize::new(0),
        n: 3,
    };
    let (g1, g2) = (gate(), gate());
    let (p1, p2) = (
        json!({"email": "alex@northstar.io"}),
        json!({"email": "sam@northstar.io"}),
    );
    let (a, b) = tokio::join!(env.run_gated(&tag, &p1, &g1), env.run_gated(&tag, &p2, &g2));
    assert_eq!(a.outcome, Outcome::Delivered, "{a:?}");
    assert_eq!(b.outcome, Outcome::Delivered, "{b:?}");

    let state = env.sandbox.state(ACCT);
    assert_eq!(state.tags.len(), 1, "{:?}", state.tags);
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["Launch Week"]
    );
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "sam@northstar.io"),
        ["Launch Week"]
    );
    // Both tried to create it; one lost with a duplicate and looked it up again.
    let creates: Vec<_> = env
        .take_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/3/tags")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates.len(), 2);
    assert!(
        creates.contains(&Some(201)) && creates.contains(&Some(422)),
        "{creates:?}"
    );
    let loser = if a.calls.len() == 5 { &a } else { &b };
    assert_eq!(
        result_calls(loser),
        [
            "POST /acme/api/3/contact/sync",
            "GET /acme/api/3/tags?search=Launch+Week&limit=100",
            "POST /acme/api/3/tags",
            "GET /acme/api/3/tags?search=Launch+Week&limit=100",
            "POST /acme/api/3/contactTags",
        ]
    );
}

#[tokio::test]
async fn a_tag_beyond_the_first_page_of_search_results_is_found() {
    let env = Env::new().await;
    for i in 0..120 {
        env.sandbox.seed_tag(ACCT, &format!("promo {i:03}"));
    }
    env.sandbox.seed_tag(ACCT, "PROMO");
    let tag = action(json!({"action": "add_tag", "tag": "promo"}));
    let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        env.sandbox.contact_tags_by_email(ACCT, "alex@northstar.io"),
        ["PROMO"]
    );
    assert_eq!(
        env.sandbox.state(ACCT).tags.len(),
        121,
        "no tag was created"
    );
    assert!(
        calls(&env.take_log())
            .contains(&"GET /api/3/tags?search=promo&limit=100&offset=100".to_owned())
    );
}

#[tokio::test]
async fn sync_contact_sends_the_payload_fields_and_splits_name() {
    let env = Env::new().await;
    let sync = action(json!({"action": "sync_contact"}));
    let r = env
        .run(
            &sync,
            &json!({"email": "Ada@Example.org", "name": "Ada King Lovelace", "phone": 5551234}),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.http_status, Some(201));
    assert_eq!(calls(&env.take_log()), ["POST /api/3/contact/sync"]);
    let state = env.sandbox.state(ACCT);
    let c = &state.contacts[0];
    assert_eq!(
        (
            c.email.as_str(),
            c.first_name.as_str(),
            c.last_name.as_str(),
            c.phone.as_str()
        ),
        ("Ada@Example.org", "Ada", "King Lovelace", "5551234")
    );

    let r = env
        .run(
            &sync,
            &json!({"email": "ada@example.org", "first_name": "Augusta", "last_name": "Byron"}),
        )
        .await;
    assert_eq!(r.http_status, Some(200));
    let c = &env.sandbox.state(ACCT).contacts[0];
    assert_eq!(
        (c.first_name.as_str(), c.last_name.as_str()),
        ("Augusta", "Byron")
    );
    assert_eq!(env.sandbox.state(ACCT).contacts.len(), 1);
}
