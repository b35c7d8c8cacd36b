//! `add_to_list` and `remove_from_list`: memberships, name matching, missing lists.

use handoff::delivery::retry::Outcome;
use handoff::domain::OutcomeCode;
use serde_json::json;

use crate::support::{ACCT, Env, action, calls};

#[tokio::test]
async fn add_to_list_by_name_subscribes_the_contact_and_the_warm_path_is_two_calls() {
    let env = Env::new().await;
    let list_id = env.sandbox.seed_list(ACCT, "Newsletter");
    env.sandbox.seed_list(ACCT, "Newsletter Archive");
    let add = action(json!({"action": "add_to_list", "list": "newsletter"}));

    let r = env.run(&add, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        [
            "POST /api/3/contact/sync",
            "GET /api/3/lists?filters[name]=newsletter&limit=100",
            "POST /api/3/contactLists",
        ]
    );
    let m = env
        .sandbox
        .list_memberships_by_email(ACCT, "alex@northstar.io");
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].list_id, m[0].list.as_str(), m[0].status),
        (list_id, "Newsletter", 1)
    );

    let r = env.run(&add, &json!({"email": "sam@northstar.io"})).await;
    assert_eq!(r.outcome, Outcome::Delivered);
    assert_eq!(
        calls(&env.take_log()),
        ["POST /api/3/contact/sync", "POST /api/3/contactLists"]
    );
}

#[tokio::test]
async fn add_to_list_by_id_resubscribes_an_unsubscribed_contact() {
    let env = Env::new().await;
    let list_id = env.sandbox.seed_list(ACCT, "Newsletter");
    let payload = json!({"email": "alex@northstar.io"});
    let remove = action(json!({"action": "remove_from_list", "id": list_id}));
    let add = action(json!({"action": "add_to_list", "id": list_id}));
    assert_eq!(env.run(&add, &payload).await.outcome, Outcome::Delivered);
    assert_eq!(env.run(&remove, &payload).await.outcome, Outcome::Delivered);
    assert_eq!(
        env.sandbox
            .list_memberships_by_email(ACCT, "alex@northstar.io")[0]
            .status,
        2
    );
    let r = env.run(&add, &payload).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let m = env
        .sandbox
        .list_memberships_by_email(ACCT, "alex@northstar.io");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].status, 1);
}

#[tokio::test]
async fn add_to_list_with_an_unknown_list_name_fails_permanently_and_creates_nothing() {
    let env = Env::new().await;
    env.sandbox.seed_list(ACCT, "Newsletter");
    let add = action(json!({"action": "add_to_list", "list": "Newsletters Weekly"}));
    let r = env.run(&add, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::RejectedClientError
        }
    );
    assert_eq!(r.code, OutcomeCode::RejectedClientError);
    assert!(
        r.error.as_deref().unwrap().contains("list not found"),
        "{r:?}"
    );
    assert_eq!(r.calls.len(), 2);
    assert_eq!(env.sandbox.state(ACCT).lists.len(), 1);
    assert!(
        env.sandbox
            .list_memberships_by_email(ACCT, "alex@northstar.io")
            .is_empty()
    );
}

#[tokio::test]
async fn add_to_list_with_an_unknown_list_id_fails_as_a_client_error() {
    let env = Env::new().await;
    let add = action(json!({"action": "add_to_list", "id": "77"}));
    let r = env.run(&add, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::RejectedClientError
        }
    );
    assert_eq!(r.http_status, Some(422));
    assert!(
        r.error.as_deref().unwrap().contains("list does not exist"),
        "{r:?}"
    );
}

#[tokio::test]
async fn remove_from_list_by_name_unsubscribes_the_contact() {
    let env = Env::new().await;
    env.sandbox.seed_list(ACCT, "Newsletter");
    let payload = json!({"email": "alex@northstar.io"});
    let add = action(json!({"action": "add_to_list", "list": "Newsletter"}));
    assert_eq!(env.run(&add, &payload).await.outcome, Outcome::Delivered);
    env.take_log();

    let remove = action(json!({"action": "remove_from_list", "list": "NEWSLETTER"}));
    let r = env
        .run(&remove, &json!({"email": "ALEX@northstar.io"}))
        .await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        calls(&env.take_log()),
        [
            "GET /api/3/contacts?email=ALEX%40northstar.io",
            "POST /api/3/contactLists"
        ]
    );
    assert_eq!(
        env.sandbox
            .list_memberships_by_email(ACCT, "alex@northstar.io")[0]
            .status,
        2
    );
}

#[tokio::test]
async fn remove_from_list_for_an_unknown_contact_is_delivered_with_one_call() {
    let env = Env::new().await;
    env.sandbox.seed_list(ACCT, "Newsletter");
    let remove = action(json!({"action": "remove_from_list", "list": "Newsletter"}));
    let r = env
        .run(&remove, &json!({"email": "ghost@northstar.io"}))
        .await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.http_status, Some(200));
    assert_eq!(
        calls(&env.take_log()),
        ["GET /api/3/contacts?email=ghost%40northstar.io"]
    );
    assert!(
        env.sandbox.state(ACCT).contacts.is_empty(),
        "no contact was created"
    );
}
