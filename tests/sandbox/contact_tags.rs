//! contactTags: attach, list per contact, delete (§3.8–3.10, §4 rows 9–11).

use serde_json::json;

use crate::helpers::spawn;

#[tokio::test]
async fn tagging_a_contact_answers_201_with_the_contact_side_loaded() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    // Ids may be sent as numbers or strings.
    let r = t
        .ac
        .post("/contactTags", json!({ "contactTag": { "contact": contact.parse::<u64>().unwrap(), "tag": tag.to_string() } }))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["contactTag"]["contact"], contact);
    assert_eq!(r.body["contactTag"]["tag"], tag.to_string());
    assert!(r.body["contactTag"]["id"].is_string());
    assert!(
        r.body["contactTag"]["links"]["tag"]
            .as_str()
            .unwrap()
            .ends_with("/tag")
    );
    let contacts = r.body["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["id"], contact);
    assert_eq!(contacts[0]["email"], "a@b.co");
    assert_eq!(t.sandbox.contact_tags_by_email("acme", "A@B.CO"), ["VIP"]);
}

#[tokio::test]
async fn posting_a_pair_that_exists_returns_the_existing_association() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    let body = json!({ "contactTag": { "contact": contact, "tag": tag } });
    let first = t.ac.post("/contactTags", body.clone()).await;
    let again = t.ac.post("/contactTags", body).await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.body["contactTag"]["id"],
        first.body["contactTag"]["id"]
    );
    assert_eq!(
        again.body["contactTag"]["cdate"],
        first.body["contactTag"]["cdate"]
    );

    let r = t.ac.get(&format!("/contacts/{contact}/contactTags")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["contactTags"].as_array().unwrap().len(), 1);
    assert!(
        r.body.get("meta").is_none(),
        "no meta on a contact's contactTags"
    );
    assert_eq!(
        t.ac.get(&format!("/tags/{tag}")).await.body["tag"]["subscriber_count"],
        "1"
    );
}

#[tokio::test]
async fn tagging_an_unknown_contact_is_a_json_api_404() {
    let t = spawn().await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    let r =
        t.ac.post(
            "/contactTags",
            json!({ "contactTag": { "contact": "404", "tag": tag } }),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({ "errors": [{ "status": 404, "title": "Not Found", "detail": "Contact not found" }] })
    );

    let contact = t.ac.sync("a@b.co").await;
    let r =
        t.ac.post(
            "/contactTags",
            json!({ "contactTag": { "contact": contact, "tag": "999" } }),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["errors"][0]["detail"], "Tag not found");
}

#[tokio::test]
async fn a_contact_tag_without_contact_or_tag_is_a_422_missing_attribute() {
    let t = spawn().await;
    let r =
        t.ac.post("/contactTags", json!({ "contactTag": { "tag": "1" } }))
            .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body,
        json!({ "errors": [{ "status": 422, "title": "Missing attribute", "source": { "pointer": "/data/attributes/contact" } }] })
    );
    let r =
        t.ac.post("/contactTags", json!({ "contactTag": { "contact": "1" } }))
            .await;
    assert_eq!(
        r.body["errors"][0]["source"]["pointer"],
        "/data/attributes/tag"
    );
}

#[tokio::test]
async fn deleting_a_contact_tag_answers_200_with_an_empty_object_then_404_for_subscriber_tag() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    let r =
        t.ac.post(
            "/contactTags",
            json!({ "contactTag": { "contact": contact, "tag": tag } }),
        )
        .await;
    let id = r.body["contactTag"]["id"].as_str().unwrap().to_string();

    let r = t.ac.delete(&format!("/contactTags/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "{}");
    assert!(t.sandbox.contact_tags_by_email("acme", "a@b.co").is_empty());

    let r = t.ac.delete(&format!("/contactTags/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({ "message": format!("No Result found for SubscriberTag with id {id}") })
    );
}

#[tokio::test]
async fn a_removed_tag_can_be_attached_again_as_a_new_association() {
    let t = spawn().await;
    let contact = t.ac.sync("a@b.co").await;
    let tag = t.sandbox.seed_tag("acme", "VIP");
    let body = json!({ "contactTag": { "contact": contact, "tag": tag } });
    let first = t.ac.post("/contactTags", body.clone()).await.body["contactTag"]["id"].clone();
    t.ac.delete(&format!("/contactTags/{}", first.as_str().unwrap()))
        .await;
    let second = t.ac.post("/contactTags", body).await.body["contactTag"]["id"].clone();
    assert_ne!(first, second);
}

#[tokio::test]
async fn the_contact_tags_of_an_unknown_contact_are_a_404_for_subscriber() {
    let t = spawn().await;
    let r = t.ac.get("/contacts/12/contactTags").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["message"],
        "No Result found for Subscriber with id 12"
    );
}
