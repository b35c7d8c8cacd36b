//! Contacts: sync, create, find by email, get, update, delete (§3.1–3.4, §4 rows 1–6 and 14).

use serde_json::json;

use crate::helpers::spawn;

#[tokio::test]
async fn syncing_a_new_email_answers_201_with_a_new_string_id() {
    let t = spawn().await;
    let r =
        t.ac.post(
            "/contact/sync",
            json!({ "contact": { "email": "alex@northstar.io", "firstName": "Alex" } }),
        )
        .await;
    assert_eq!(r.status, 201);
    let contact = &r.body["contact"];
    assert!(contact["id"].is_string(), "{contact}");
    assert_eq!(contact["email"], "alex@northstar.io");
    assert_eq!(contact["firstName"], "Alex");
    assert_eq!(contact["email_empty"], false);
    assert_eq!(contact["orgid"], "");
    assert!(
        contact["links"]["contactTags"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/acme/api/3/contacts/{}/contactTags",
                contact["id"].as_str().unwrap()
            )),
        "{contact}"
    );
    assert!(
        r.body.get("fieldValues").is_none(),
        "no fieldValues key when none were sent"
    );

    let other = t.ac.sync("someone.else@northstar.io").await;
    assert_ne!(other, contact["id"].as_str().unwrap());
}

#[tokio::test]
async fn syncing_with_field_values_returns_them_at_the_top_level() {
    let t = spawn().await;
    let field = t.sandbox.seed_field("acme", "Plan");
    let r = t
        .ac
        .post(
            "/contact/sync",
            json!({ "contact": { "email": "a@b.co", "fieldValues": [{ "field": field.to_string(), "value": "pro" }] } }),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["fieldValues"][0]["field"], field.to_string());
    assert_eq!(r.body["fieldValues"][0]["value"], "pro");
    assert_eq!(
        r.body["contact"]["fieldValues"],
        json!([r.body["fieldValues"][0]["id"]])
    );
}

#[tokio::test]
async fn syncing_a_known_email_in_another_case_answers_200_with_the_same_id_and_merges_fields() {
    let t = spawn().await;
    let created =
        t.ac.post(
            "/contact/sync",
            json!({ "contact": { "email": "Alex@Northstar.io", "firstName": "Alex" } }),
        )
        .await;
    let id = created.body["contact"]["id"].clone();

    let r =
        t.ac.post(
            "/contact/sync",
            json!({ "contact": { "email": "alex@NORTHSTAR.IO", "lastName": "Lee" } }),
        )
        .await;
    assert_eq!(r.status, 200);
    let contact = &r.body["contact"];
    assert_eq!(contact["id"], id);
    assert_eq!(contact["firstName"], "Alex", "omitted fields are untouched");
    assert_eq!(
        contact["lastName"], "Lee",
        "supplied fields are overwritten"
    );
    assert_eq!(
        contact["email"], "Alex@Northstar.io",
        "the first-seen casing is kept"
    );
    assert!(
        contact["contactLists"].is_array(),
        "the full record: {contact}"
    );
}

#[tokio::test]
async fn creating_a_contact_with_a_known_email_in_any_case_is_a_422_duplicate() {
    let t = spawn().await;
    let r =
        t.ac.post("/contacts", json!({ "contact": { "email": "a@b.co" } }))
            .await;
    assert_eq!(r.status, 201);
    assert!(r.body["contact"]["id"].is_string());

    let r =
        t.ac.post("/contacts", json!({ "contact": { "email": "A@B.CO" } }))
            .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body,
        json!({ "errors": [{
            "title": "Email address already exists in the system",
            "detail": "",
            "code": "duplicate",
            "source": { "pointer": "/data/attributes/email" },
        }] })
    );
}

#[tokio::test]
async fn an_invalid_email_is_a_422_email_invalid_on_sync_and_on_create() {
    let t = spawn().await;
    let expected = json!({ "errors": [{
        "title": "Contact Email Address is not valid.",
        "detail": "",
        "code": "email_invalid",
        "error": "must_be_valid_email_address",
        "source": { "pointer": "/data/attributes/email" },
    }] });
    for path in ["/contact/sync", "/contacts"] {
        let r =
            t.ac.post(path, json!({ "contact": { "email": "not-an-email" } }))
                .await;
        assert_eq!(r.status, 422, "{path}");
        assert_eq!(r.body, expected, "{path}");
    }
    assert!(t.sandbox.state("acme").contacts.is_empty());
}

#[tokio::test]
async fn a_missing_email_is_a_422_field_missing() {
    let t = spawn().await;
    let r =
        t.ac.post(
            "/contact/sync",
            json!({ "contact": { "firstName": "Nobody" } }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["code"], "field_missing");
    assert_eq!(
        r.body["errors"][0]["source"]["pointer"],
        "/data/attributes/email"
    );
}

#[tokio::test]
async fn a_malformed_body_is_a_bare_400() {
    let t = spawn().await;
    let r =
        t.ac.http
            .post(format!("{}/contact/sync", t.ac.api))
            .header("Api-Token", &t.ac.token)
            .header("Content-Type", "application/json")
            .body("{\"contact\": ")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn finding_an_unknown_email_answers_200_with_no_contacts_and_a_string_total_of_0() {
    let t = spawn().await;
    t.ac.sync("known@b.co").await;
    let r = t.ac.get("/contacts?email=unknown%40b.co").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["contacts"], json!([]));
    assert_eq!(r.body["meta"]["total"], "0");
    assert_eq!(r.body["scoreValues"], json!([]));
}

#[tokio::test]
async fn finding_by_email_is_exact_and_case_insensitive() {
    let t = spawn().await;
    let id = t.ac.sync("first+tag@b.co").await;
    t.ac.sync("first@b.co").await;
    let r = t.ac.get("/contacts?email=FIRST%2BTAG%40B.CO").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], "1");
    assert_eq!(r.body["contacts"][0]["id"], id);
    assert_eq!(r.body["meta"]["page_input"]["limit"], 20);
    assert_eq!(r.body["contacts"][0]["orgid"], "0");
}

#[tokio::test]
async fn getting_an_unknown_contact_id_is_a_404_for_subscriber() {
    let t = spawn().await;
    for id in ["999", "abc"] {
        let r = t.ac.get(&format!("/contacts/{id}")).await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            json!({ "message": format!("No Result found for Subscriber with id {id}") })
        );
    }
}

#[tokio::test]
async fn getting_a_contact_side_loads_its_lists_and_field_values_but_not_its_tags() {
    let t = spawn().await;
    let id = t.ac.sync("a@b.co").await;
    let list = t.sandbox.seed_list("acme", "Newsletter");
    let tag = t.sandbox.seed_tag("acme", "VIP");
    t.ac.post(
        "/contactLists",
        json!({ "contactList": { "list": list, "contact": id, "status": 1 } }),
    )
    .await;
    t.ac.post(
        "/contactTags",
        json!({ "contactTag": { "contact": id, "tag": tag } }),
    )
    .await;

    let r = t.ac.get(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["contact"]["id"], id);
    assert_eq!(r.body["contactLists"][0]["list"], list.to_string());
    assert_eq!(
        r.body["contact"]["contactLists"],
        json!([r.body["contactLists"][0]["id"]])
    );
    for key in [
        "contactAutomations",
        "deals",
        "fieldValues",
        "geoIps",
        "accountContacts",
    ] {
        assert!(r.body[key].is_array(), "{key}");
    }
    assert!(r.body.get("contactTags").is_none());
}

#[tokio::test]
async fn a_misspelled_filter_is_ignored_and_the_whole_collection_comes_back() {
    let t = spawn().await;
    t.ac.sync("a@b.co").await;
    t.ac.sync("c@d.co").await;
    let r = t.ac.get("/contacts?emial=nobody%40nowhere.io").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], "2");
    assert_eq!(r.body["contacts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn updating_and_deleting_a_contact_by_id() {
    let t = spawn().await;
    let id = t.ac.sync("a@b.co").await;
    let r =
        t.ac.put(
            &format!("/contacts/{id}"),
            json!({ "contact": { "firstName": "Ann" } }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["contact"]["firstName"], "Ann");

    let r = t.ac.delete(&format!("/contacts/{id}")).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let r = t.ac.delete(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        t.ac.get("/contacts?email=a%40b.co").await.body["meta"]["total"],
        "0"
    );
}
