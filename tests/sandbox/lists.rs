//! Lists, contactLists and custom fields (§3.11–3.13, §3.14 fields, §4 rows 12–13).

use handoff::sandbox::{AccountOptions, ListMembership, SandboxConfig};
use serde_json::json;

use crate::helpers::{spawn, spawn_with};

#[tokio::test]
async fn lists_filter_by_name_case_insensitively_and_get_by_id() {
    let t = spawn().await;
    let news = t.sandbox.seed_list("acme", "Weekly Newsletter");
    t.sandbox.seed_list("acme", "Onboarding");
    let r = t.ac.get("/lists?filters%5Bname%5D=newsletter").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], "1");
    assert_eq!(r.body["lists"][0]["name"], "Weekly Newsletter");
    assert_eq!(r.body["lists"][0]["id"], news.to_string());
    assert_eq!(r.body["lists"][0]["stringid"], "weekly-newsletter");

    assert_eq!(t.ac.get("/lists").await.body["meta"]["total"], "2");
    let r = t.ac.get(&format!("/lists/{news}")).await;
    assert_eq!(r.body["list"]["name"], "Weekly Newsletter");
    let r = t.ac.get("/lists/7").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({ "message": "No Result found for _List with id 7" })
    );
}

#[tokio::test]
async fn subscribing_answers_201_for_a_new_membership_and_200_for_an_update() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let list = t.sandbox.seed_list("acme", "Newsletter");
    let body = json!({ "contactList": { "list": list, "contact": contact, "status": 1 } });
    let first = t.ac.post("/contactLists", body.clone()).await;
    assert_eq!(first.status, 201);
    assert_eq!(
        first.body["contactList"]["status"], 1,
        "status echoes what was sent"
    );
    assert_eq!(first.body["contactList"]["list"], list.to_string());
    assert_eq!(
        first.body["contacts"][0]["id"], contact,
        "the contact is side-loaded"
    );

    let again = t.ac.post("/contactLists", body).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["contactList"]["id"],
        first.body["contactList"]["id"]
    );
}

#[tokio::test]
async fn unsubscribing_then_subscribing_again_resubscribes_the_same_row() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let list = t.sandbox.seed_list("acme", "Newsletter");
    let set = |status: serde_json::Value| json!({ "contactList": { "list": list.to_string(), "contact": contact, "status": status } });
    let subscribed = t.ac.post("/contactLists", set(json!(1))).await;
    let id = subscribed.body["contactList"]["id"].clone();

    let r = t.ac.post("/contactLists", set(json!(2))).await;
    assert_eq!(
        (r.status, r.body["contactList"]["id"].clone()),
        (200, id.clone())
    );
    assert_eq!(
        t.sandbox.list_memberships_by_email("acme", "a@b.co"),
        [ListMembership {
            list_id: list,
            list: "Newsletter".into(),
            status: 2
        }]
    );

    let r = t.ac.post("/contactLists", set(json!("1"))).await;
    assert_eq!(
        (r.status, r.body["contactList"]["id"].clone()),
        (200, id.clone())
    );
    assert_eq!(
        t.sandbox.list_memberships_by_email("acme", "a@b.co")[0].status,
        1
    );

    let r = t.ac.get(&format!("/contacts/{contact}/contactLists")).await;
    let rows = r.body["contactLists"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], id);
    assert_eq!(rows[0]["status"], "1", "a string here");
}

#[tokio::test]
async fn subscribing_to_an_unknown_list_is_a_422_related_missing() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let r =
        t.ac.post(
            "/contactLists",
            json!({ "contactList": { "list": "99", "contact": contact, "status": 1 } }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body,
        json!({ "errors": [{
            "title": "The related list does not exist.",
            "detail": "",
            "code": "related_missing",
            "error": "list_not_exist",
            "source": { "pointer": "/data/attributes/list" },
        }] })
    );

    let r =
        t.ac.post(
            "/contactLists",
            json!({ "contactList": { "list": "99", "contact": "98", "status": 1 } }),
        )
        .await;
    let codes: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["list_not_exist", "contact_not_exist"]);
}

#[tokio::test]
async fn custom_fields_are_listed_with_a_string_total() {
    let t = spawn().await;
    let plan = t.sandbox.seed_field("acme", "Plan");
    t.sandbox.seed_field("acme", "Company Size");
    let r = t.ac.get("/fields?limit=100").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], "2");
    assert_eq!(r.body["fields"][0]["id"], plan.to_string());
    assert_eq!(r.body["fields"][0]["title"], "Plan");
    assert_eq!(r.body["fields"][1]["perstag"], "COMPANY_SIZE");
}

#[tokio::test]
async fn a_user_without_list_permission_gets_403_family_e_on_lists_and_fields() {
    let t = spawn_with(
        SandboxConfig::unlimited(),
        AccountOptions::named("acme").restricted(),
    )
    .await;
    let r = t.ac.get("/lists").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({ "errors": [{ "status": 403, "title": "Forbidden", "detail": "You do not have permission to view lists." }] })
    );
    assert_eq!(t.ac.get("/fields").await.status, 403);
    assert_eq!(t.ac.get("/tags").await.status, 200);
}
