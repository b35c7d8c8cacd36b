//! What history keeps: no token, bounded excerpts; and mapping errors that cost no call.

use handoff::delivery::retry::Outcome;
use handoff::domain::OutcomeCode;
use handoff::sandbox::Fault;
use serde_json::json;

use crate::support::{ACCT, Env, TOKEN, action};

#[tokio::test]
async fn a_template_naming_a_missing_field_is_a_mapping_error_with_no_call() {
    let env = Env::new().await;
    let tag = action(json!({"action": "add_tag", "tag": "step-{{payload.step}}"}));
    let r = env.run(&tag, &json!({"email": "alex@northstar.io"})).await;
    assert_eq!(
        r.outcome,
        Outcome::Permanent {
            code: OutcomeCode::MappingError
        }
    );
    assert_eq!(r.code, OutcomeCode::MappingError);
    assert_eq!(r.http_status, None);
    assert!(r.calls.is_empty());
    assert!(
        r.error.as_deref().unwrap().contains("payload.step"),
        "{r:?}"
    );
    assert!(env.take_log().is_empty());
}

#[tokio::test]
async fn a_missing_or_invalid_email_is_a_mapping_error_with_no_call() {
    let env = Env::new().await;
    let sync = action(json!({"action": "add_to_list", "list": "Newsletter"}));
    for payload in [
        json!({}),
        json!({"email": "not an email"}),
        json!({"email": 7}),
        json!({"name": "Ada"}),
    ] {
        let r = env.run(&sync, &payload).await;
        assert_eq!(r.code, OutcomeCode::MappingError, "{payload}");
        assert!(r.calls.is_empty());
        let error = r.error.unwrap();
        assert!(error.contains("payload.email"), "{error}");
        assert!(
            !error.contains("not an email"),
            "the payload stays out of messages"
        );
    }
    assert!(env.take_log().is_empty());
}

#[tokio::test]
async fn no_call_record_or_message_carries_the_token_and_excerpts_stay_within_two_kib() {
    let env = Env::new().await;
    let payload = json!({"email": "alex@northstar.io", "name": "Alex Doe"});
    let mut results = Vec::new();
    // Enough tags that the contact's association list is longer than 2 KiB.
    for i in 0..40 {
        let tag = action(json!({"action": "add_tag", "tag": format!("Tag number {i}")}));
        results.push(env.run(&tag, &payload).await);
    }
    results.push(
        env.run(
            &action(json!({"action": "remove_tag", "tag": "tag number 7"})),
            &payload,
        )
        .await,
    );
    for fault in [
        Fault::html(504),
        Fault::status(503),
        Fault::drop_connection(),
        Fault::status(429),
    ] {
        env.sandbox.inject_fault(ACCT, fault);
        results.push(
            env.run(&action(json!({"action": "sync_contact"})), &payload)
                .await,
        );
    }
    results.push(
        env.dest
            .perform(
                &env.api_url,
                "wrong-token".to_owned().into(),
                &action(json!({"action": "sync_contact"})),
                &crate::support::event(&payload),
                &handoff::destinations::activecampaign::NoGate,
            )
            .await,
    );
    let mut longest = 0;
    for r in &results {
        let text = serde_json::to_string(&r.calls).unwrap() + r.error.as_deref().unwrap_or("");
        assert!(!text.contains(TOKEN), "token leaked: {r:?}");
        assert!(!text.contains("Api-Token"), "{r:?}");
        for c in &r.calls {
            assert!(
                c.response_excerpt.len() <= 2048,
                "{}",
                c.response_excerpt.len()
            );
            assert!(!c.path.contains(TOKEN));
            longest = longest.max(c.response_excerpt.len());
        }
    }
    assert_eq!(
        longest, 2048,
        "some answer was longer than 2 KiB and was cut"
    );
    assert!(results[40].is_delivered());
    assert_eq!(
        env.sandbox
            .contact_tags_by_email(ACCT, "alex@northstar.io")
            .len(),
        39
    );
}
