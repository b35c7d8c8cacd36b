//! The control API over HTTP (`/__sandbox/…`) and the handle's reset and shutdown.

use handoff::sandbox::{
    AccountInfo, AccountOptions, AccountState, DEMO_TOKEN, LoggedRequest, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

use crate::helpers::{Ac, spawn};

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_account_created_over_http_is_reachable_at_its_api_url_with_its_token() {
    let t = spawn().await;
    let control = t.sandbox.control_url();
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{control}/accounts"),
        Some(json!({ "name": "initech", "rate_limit_per_second": 0 })),
    )
    .await;
    assert_eq!(status, 201);
    let info: AccountInfo = serde_json::from_value(body).unwrap();
    assert_eq!(info.api_url, format!("{}/initech", t.sandbox.url()));
    assert_eq!(Ac::new(&info).get("/tags").await.status, 200);

    let (status, body) = call(
        reqwest::Method::POST,
        format!("{control}/accounts"),
        Some(json!({ "name": "initech" })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{control}/accounts"),
        Some(json!({ "name": "__sneaky" })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{control}/accounts/nobody"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn seeding_faults_state_and_the_request_log_over_http() {
    let t = spawn().await;
    let acct = format!("{}/accounts/acme", t.sandbox.control_url());
    let (status, tag) = call(
        reqwest::Method::POST,
        format!("{acct}/tags"),
        Some(json!({ "name": "VIP" })),
    )
    .await;
    assert_eq!(status, 201);
    let (_, list) = call(
        reqwest::Method::POST,
        format!("{acct}/lists"),
        Some(json!({ "name": "Newsletter" })),
    )
    .await;
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{acct}/tags"),
        Some(json!({ "name": "vip" })),
    )
    .await;
    assert_eq!(status, 409, "seeding respects the case-insensitive tag key");

    let contact = t.ac.sync("alex@northstar.io").await;
    t.ac.post(
        "/contactTags",
        json!({ "contactTag": { "contact": contact, "tag": tag["id"] } }),
    )
    .await;
    t.ac.post(
        "/contactLists",
        json!({ "contactList": { "contact": contact, "list": list["id"], "status": 1 } }),
    )
    .await;

    let (status, state) = call(reqwest::Method::GET, format!("{acct}/state"), None).await;
    assert_eq!(status, 200);
    let state: AccountState = serde_json::from_value(state).unwrap();
    assert_eq!(state.contacts[0].email, "alex@northstar.io");
    assert_eq!(state.contacts[0].tags, ["VIP"]);
    assert_eq!(state.contacts[0].lists[0].status, 1);
    let (status, one) = call(
        reqwest::Method::GET,
        format!("{acct}/contacts/ALEX@northstar.io"),
        None,
    )
    .await;
    assert_eq!((status, one["tags"].clone()), (200, json!(["VIP"])));

    let (status, pending) = call(
        reqwest::Method::POST,
        format!("{acct}/faults"),
        Some(json!([{ "status": 503, "body": "html", "count": 2 }, { "drop": true }])),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(pending.as_array().unwrap().len(), 2);
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{acct}/faults"),
        Some(json!({ "status": 503, "drop": true })),
    )
    .await;
    assert_eq!(status, 400, "a fault is one kind");
    assert_eq!(t.ac.get("/tags").await.status, 503);
    call(reqwest::Method::DELETE, format!("{acct}/faults"), None).await;
    assert_eq!(t.ac.get("/tags?limit=5").await.status, 200);

    let (_, log) = call(reqwest::Method::GET, format!("{acct}/requests"), None).await;
    let log: Vec<LoggedRequest> = serde_json::from_value(log.clone()).unwrap();
    let sync = &log[0];
    assert_eq!(
        (sync.method.as_str(), sync.path.as_str()),
        ("POST", "/api/3/contact/sync")
    );
    assert_eq!(sync.status, Some(201));
    assert_eq!(
        sync.body,
        Some(json!({ "contact": { "email": "alex@northstar.io" } }))
    );
    assert_eq!(log.last().unwrap().path, "/api/3/tags?limit=5");
    assert_eq!(log.len(), 5);
}

#[tokio::test]
async fn the_request_log_shows_rfc3339_times() {
    let t = spawn().await;
    t.ac.get("/tags").await;
    let (_, log) = call(
        reqwest::Method::GET,
        format!("{}/accounts/acme/requests", t.sandbox.control_url()),
        None,
    )
    .await;
    let at = log[0]["at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["status"], 200);
}

#[tokio::test]
async fn patching_an_account_rotates_its_token() {
    let t = spawn().await;
    let (status, settings) = call(
        reqwest::Method::PATCH,
        format!("{}/accounts/acme", t.sandbox.control_url()),
        Some(json!({ "token": "new-token" })),
    )
    .await;
    assert_eq!(
        (status, settings["token"].clone()),
        (200, json!("new-token"))
    );
    assert_eq!(t.ac.get("/tags").await.status, 403);
}

#[tokio::test]
async fn resetting_empties_accounts_and_keeps_only_the_initial_ones() {
    let sandbox = Sandbox::start(SandboxConfig {
        accounts: vec![AccountOptions::named("demo").token(DEMO_TOKEN)],
        ..SandboxConfig::unlimited()
    })
    .await
    .unwrap();
    let demo = Ac::new(&AccountInfo {
        name: "demo".into(),
        token: DEMO_TOKEN.into(),
        api_url: format!("{}/demo", sandbox.url()),
    });
    demo.sync("a@b.co").await;
    sandbox.create_account(AccountOptions::named("extra"));

    sandbox.reset_account("demo");
    assert!(sandbox.state("demo").contacts.is_empty());
    assert!(sandbox.request_log("demo").is_empty());
    demo.sync("a@b.co").await;

    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/reset", sandbox.control_url()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["accounts"].as_array().unwrap().len(), 1);
    assert!(sandbox.state("demo").contacts.is_empty());
    assert!(
        sandbox
            .try_create_account(AccountOptions::named("extra"))
            .is_ok(),
        "extra was removed"
    );
    assert_eq!(demo.get("/tags").await.status, 200, "demo keeps its token");

    demo.sync("b@c.co").await;
    sandbox.reset();
    assert!(sandbox.state("demo").contacts.is_empty());
}

#[tokio::test]
async fn after_shutdown_the_sandbox_refuses_connections() {
    let t = spawn().await;
    assert_eq!(t.ac.get("/tags").await.status, 200);
    t.sandbox.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{}/tags", t.ac.api))
            .send()
            .await
            .is_err()
    );
}
