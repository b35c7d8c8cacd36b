//! A sandbox per test, and a small ActiveCampaign client that keeps status, headers and body.

use handoff::sandbox::{AccountInfo, AccountOptions, Sandbox, SandboxConfig, SandboxHandle};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A running sandbox with one account and a client for it.
pub struct TestSandbox {
    pub sandbox: SandboxHandle,
    pub account: AccountInfo,
    pub ac: Ac,
}

/// A sandbox with rate limiting off and one account, `acme`.
pub async fn spawn() -> TestSandbox {
    spawn_with(SandboxConfig::unlimited(), AccountOptions::named("acme")).await
}

/// A sandbox started with `config` and one account made with `options`.
pub async fn spawn_with(config: SandboxConfig, options: AccountOptions) -> TestSandbox {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let account = sandbox.create_account(options);
    let ac = Ac::new(&account);
    TestSandbox {
        sandbox,
        account,
        ac,
    }
}

/// An answer, kept whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON, or `Null` when it is not JSON.
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one account's `/api/3`.
#[derive(Clone)]
pub struct Ac {
    pub http: reqwest::Client,
    pub api: String,
    pub token: String,
}

impl Ac {
    pub fn new(account: &AccountInfo) -> Self {
        Self {
            http: reqwest::Client::new(),
            api: format!("{}/api/3", account.api_url),
            token: account.token.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.try_send(method, path, body, Some(&self.token))
            .await
            .expect("the sandbox answers")
    }

    /// Like `send`, with an explicit token (or none) and the transport error kept.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> reqwest::Result<Reply> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("Accept", "application/json");
        if let Some(token) = token {
            req = req.header("Api-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }

    /// Syncs a contact and returns its id.
    pub async fn sync(&self, email: &str) -> String {
        let r = self
            .post(
                "/contact/sync",
                serde_json::json!({ "contact": { "email": email } }),
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "sync: {r:?}");
        r.body["contact"]["id"]
            .as_str()
            .expect("string id")
            .to_string()
    }
}
