//! Tags: list and search, create, get (§3.5–3.7, §4 rows 7, 8 and 15), and pagination.

use serde_json::json;

use crate::helpers::spawn;

#[tokio::test]
async fn creating_a_tag_answers_201_with_a_string_id() {
    let t = spawn().await;
    let r =
        t.ac.post(
            "/tags",
            json!({ "tag": { "tag": "VIP", "tagType": "contact", "description": "" } }),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["tag"]["tag"], "VIP");
    assert_eq!(r.body["tag"]["tagType"], "contact");
    let id = r.body["tag"]["id"].as_str().unwrap();

    let r = t.ac.get(&format!("/tags/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["tag"]["tag"], "VIP");
    assert_eq!(r.body["tag"]["subscriber_count"], "0");
}

#[tokio::test]
async fn creating_a_tag_whose_name_exists_in_another_case_is_a_422_duplicate_entry() {
    let t = spawn().await;
    t.sandbox.seed_tag("acme", "Trial Started");
    let r =
        t.ac.post(
            "/tags",
            json!({ "tag": { "tag": "trial started", "tagType": "contact" } }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body,
        json!({
            "message": "Could not process request",
            "error": "Duplicate entry 'contact-trial started' for key 'typetag'",
        })
    );
    // Uniqueness is per tag type.
    let r =
        t.ac.post(
            "/tags",
            json!({ "tag": { "tag": "trial started", "tagType": "template" } }),
        )
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn an_empty_tag_name_is_accepted_once() {
    let t = spawn().await;
    assert_eq!(t.ac.post("/tags", json!({})).await.status, 201);
    let r = t.ac.post("/tags", json!({})).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["error"],
        "Duplicate entry 'contact-' for key 'typetag'"
    );
}

#[tokio::test]
async fn searching_tags_is_a_case_insensitive_contains_with_a_default_page_of_20() {
    let t = spawn().await;
    for n in 0..25 {
        let name = match n % 3 {
            0 => format!("VIP {n}"),
            1 => format!("super-vip-{n}"),
            _ => format!("Vip{n}"),
        };
        t.sandbox.seed_tag("acme", &name);
    }
    t.sandbox.seed_tag("acme", "Newsletter");
    let r = t.ac.get("/tags?search=vip").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], "25");
    let tags = r.body["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 20);
    assert!(
        tags.iter()
            .all(|t| t["tag"].as_str().unwrap().to_lowercase().contains("vip"))
    );
}

#[tokio::test]
async fn ordering_tags_by_weight_puts_the_exact_match_first() {
    let t = spawn().await;
    for name in ["Super VIP", "VIP Gold", "vip", "Other"] {
        t.sandbox.seed_tag("acme", name);
    }
    let r = t.ac.get("/tags?search=VIP&orders%5Bsearch%5D=weight").await;
    let names: Vec<&str> = r.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vip", "VIP Gold", "Super VIP"]);
    let r = t.ac.get("/tags?filters%5Bsearch%5D%5Beq%5D=VIP").await;
    assert_eq!(r.body["tags"][0]["tag"], "vip");
    assert_eq!(r.body["meta"]["total"], "1");
}

#[tokio::test]
async fn a_limit_above_100_is_capped_at_100() {
    let t = spawn().await;
    for n in 0..120 {
        t.sandbox.seed_tag("acme", &format!("tag-{n:03}"));
    }
    let r = t.ac.get("/tags?limit=500").await;
    assert_eq!(r.body["tags"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["meta"]["total"], "120");
    let r = t.ac.get("/tags?limit=500&offset=100").await;
    assert_eq!(r.body["tags"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn paging_with_limit_and_offset_visits_every_tag_once() {
    let t = spawn().await;
    for n in 0..47 {
        t.sandbox.seed_tag("acme", &format!("tag-{n}"));
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let r = t.ac.get(&format!("/tags?limit=10&offset={offset}")).await;
        let total: usize = r.body["meta"]["total"].as_str().unwrap().parse().unwrap();
        for tag in r.body["tags"].as_array().unwrap() {
            seen.push(tag["id"].as_str().unwrap().to_string());
        }
        offset += 10;
        if offset >= total {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (47, 47));
}

#[tokio::test]
async fn a_misspelled_tag_search_is_ignored() {
    let t = spawn().await;
    t.sandbox.seed_tag("acme", "VIP");
    t.sandbox.seed_tag("acme", "Newsletter");
    let r = t.ac.get("/tags?serach=vip").await;
    assert_eq!(r.body["meta"]["total"], "2");
}

#[tokio::test]
async fn getting_an_unknown_tag_is_a_404_for_tag() {
    let t = spawn().await;
    let r = t.ac.get("/tags/77").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({ "message": "No Result found for Tag with id 77" })
    );
}
