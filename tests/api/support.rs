//! `TestApp`: the real application on port 0 over a fresh database, with one organization ready.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use handoff::admin::{TenantCredentials, init_tenant};
use handoff::app::Application;
use handoff::auth::crypto::MasterKey;
use handoff::auth::jwt::TokenSpec;
use handoff::config::Config;
use handoff::shutdown::Shutdown;
use handoff::storage::Store;
use handoff::storage::testing::TestDb;
use secrecy::ExposeSecret;
use serde_json::Value;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub creds: TenantCredentials,
    pub store: Arc<dyn Store>,
    pub master: Arc<MasterKey>,
    master_text: String,
    config: Config,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _db: TestDb,
}

/// Runs one test body against SQLite, and against PostgreSQL when `TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! app_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($app:ident : TestApp) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($app: $crate::support::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = handoff::storage::testing::TestDb::sqlite().await;
                    let app = $crate::support::TestApp::spawn(db, &[]).await;
                    body(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = handoff::storage::testing::TestDb::postgres().await else {
                        eprintln!("skipped: no TEST_DATABASE_URL");
                        return;
                    };
                    let app = $crate::support::TestApp::spawn(db, &[]).await;
                    body(app).await;
                }
            }
        )*
    };
}

impl TestApp {
    /// Starts the app on 127.0.0.1:0 over `db`, with extra `HANDOFF__…` settings.
    pub async fn spawn(db: TestDb, env: &[(&str, &str)]) -> Self {
        Self::spawn_roles(db, env, true).await
    }

    /// Like `spawn`, with or without delivery workers on this node (`handoff serve` vs `handoff api`).
    pub async fn spawn_roles(db: TestDb, env: &[(&str, &str)], workers: bool) -> Self {
        let mut vars: Vec<(String, String)> = vec![
            ("HANDOFF__SERVER__BIND".into(), "127.0.0.1:0".into()),
            ("HANDOFF__DATABASE__URL".into(), db.url.clone()),
            ("HANDOFF__SERVER__SHUTDOWN_GRACE_SECONDS".into(), "2".into()),
            // The sandbox listens on loopback.
            (
                "HANDOFF__DESTINATIONS__ALLOW_PRIVATE_NETWORKS".into(),
                "true".into(),
            ),
            // Short retries and polls keep delivery tests fast; the real schedule is unit-tested.
            (
                "HANDOFF__RETRY__SCHEDULE_SECONDS".into(),
                "[1, 1, 2]".into(),
            ),
            ("HANDOFF__RETRY__JITTER".into(), "0.0".into()),
            ("HANDOFF__DELIVERY__POLL_INTERVAL_MS".into(), "50".into()),
            ("HANDOFF__DESTINATIONS__TIMEOUT_MS".into(), "2000".into()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::load_from(None, vars).expect("test config");
        let (master, master_text) = MasterKey::generate();
        let store = db.store.clone();
        let creds = init_tenant(&*store, &master, "Northstar", "Onboarding")
            .await
            .expect("init tenant");
        let mut app = Application::build(&config, store.clone(), master)
            .await
            .expect("build app");
        if !workers {
            app = app.without_workers();
        }
        let addr = app.local_addr();
        let master = app.state().master_key.clone();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            client: reqwest::Client::new(),
            creds,
            store,
            master,
            master_text,
            config,
            shutdown,
            task: Some(task),
            _db: db,
        }
    }

    /// Another node on the same database (its own pool, rule cache and listener), as a second
    /// `handoff` process would be. Returns its address; it stops when `self` is dropped.
    pub async fn spawn_node(&self) -> SocketAddr {
        let store = handoff::storage::connect(&self.config.database_url(), Default::default())
            .await
            .expect("second node connects");
        let master = MasterKey::from_base64(&self.master_text).unwrap();
        let app = Application::build(&self.config, store, master)
            .await
            .expect("build node");
        let addr = app.local_addr();
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
        addr
    }

    /// A `handoff worker` node on the same database (its own pool and listener), stopped with `self`.
    pub async fn spawn_worker_node(&self) {
        let store = handoff::storage::connect(&self.config.database_url(), Default::default())
            .await
            .expect("worker node connects");
        let master = MasterKey::from_base64(&self.master_text).unwrap();
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        tokio::spawn(
            async move { handoff::app::run_workers(&config, store, master, shutdown).await },
        );
    }

    /// A `handoff worker` node with its operations endpoints on a port of its own (as
    /// `delivery.ops_bind` gives it); returns that address. Stopped with `self`.
    pub async fn spawn_worker_node_with_ops(&self) -> SocketAddr {
        let store = handoff::storage::connect(&self.config.database_url(), Default::default())
            .await
            .expect("worker node connects");
        let master = MasterKey::from_base64(&self.master_text).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            handoff::app::run_workers_on(&config, store, master, shutdown, Some(listener)).await
        });
        addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A fresh machine-key JWT for `creds`.
    pub fn jwt_for(creds: &TenantCredentials) -> String {
        let now = chrono::Utc::now().timestamp();
        let org = creds.organization_id.to_string();
        TokenSpec::new(&creds.access_key, &org, now)
            .sign(creds.secret_key.expose_secret().as_bytes())
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", Self::jwt_for(&self.creds))
    }

    pub fn basic_for(creds: &TenantCredentials) -> String {
        let raw = format!("{}:{}", creds.access_key, creds.secret_key.expose_secret());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Another organization in the same database.
    pub async fn other_org(&self) -> TenantCredentials {
        init_tenant(&*self.store, &self.master, "Rival", "Elsewhere")
            .await
            .unwrap()
    }

    /// POSTs JSON with the publishable key.
    pub async fn send_event(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/events"))
            .header("X-Meshes-Publishable-Key", &self.creds.publishable_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A management GET with a fresh JWT.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Authorization", self.bearer())
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Authorization", self.bearer())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .header("Authorization", self.bearer())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the server and waits for it, as SIGTERM would.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The event every example uses.
pub fn onboarding_event() -> Value {
    serde_json::json!({"event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
     "payload": {"user_id": "usr_5012", "email": "alex@northstar.io", "page_id": "page_connect-crm",
                 "page_title": "Connect your CRM", "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z"}})
}

/// Asserts the one error shape and returns the body.
pub async fn error_body(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: Value = resp.json().await.expect("a JSON error body");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["error"]["name"].is_string(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["data"].is_array(), "{body}");
    body
}

/// An in-process ActiveCampaign sandbox (rate limit off) with one account.
pub async fn sandbox_account() -> (
    handoff::sandbox::SandboxHandle,
    handoff::sandbox::AccountInfo,
) {
    let sandbox = handoff::sandbox::Sandbox::start(handoff::sandbox::SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let account = sandbox.create_account(handoff::sandbox::AccountOptions::default());
    (sandbox, account)
}

impl TestApp {
    /// Creates an ActiveCampaign connection in our workspace for `account`; returns its id.
    pub async fn connection_for(&self, account: &handoff::sandbox::AccountInfo) -> String {
        let resp = self
            .post(
                "/api/v1/connections",
                &serde_json::json!({"workspace": self.creds.workspace_id.to_string(), "type": "activecampaign",
                  "name": "Northstar AC", "metadata": {"api_url": account.api_url, "api_key": account.token}}),
            )
            .await;
        assert_eq!(resp.status(), 201, "create connection");
        let body: Value = resp.json().await.unwrap();
        body["connection"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a rule on `connection`; returns its id.
    pub async fn rule_for(&self, connection: &str, extra: Value) -> String {
        let mut body = serde_json::json!({"workspace": self.creds.workspace_id.to_string(), "connection": connection,
            "event": "page.completed", "metadata": {"action": "add_tag", "tag": "onboarding-step-{{payload.sequence_step}}-done"}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let resp = self.post("/api/v1/rules", &body).await;
        assert_eq!(resp.status(), 201, "create rule");
        let body: Value = resp.json().await.unwrap();
        body["rule"]["id"].as_str().unwrap().to_owned()
    }

    /// Sends the onboarding event (or `body`) and returns how many rule events it fanned out to.
    pub async fn fan_out_of(&self, body: &Value) -> i64 {
        let resp = self.send_event(body).await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        let id: uuid::Uuid = v["event"]["id"].as_str().unwrap().parse().unwrap();
        self.store
            .get_event(self.creds.organization_id, id.into())
            .await
            .unwrap()
            .unwrap()
            .total_rules
    }
}

/// Polls `check` every 25 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

impl TestApp {
    /// Sends `body` and returns the event id.
    pub async fn send_for_id(&self, body: &Value) -> handoff::domain::EventId {
        let resp = self.send_event(body).await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        let id: uuid::Uuid = v["event"]["id"].as_str().unwrap().parse().unwrap();
        id.into()
    }

    /// The event's rule events as stored now.
    pub async fn rule_events(
        &self,
        event: handoff::domain::EventId,
    ) -> Vec<handoff::storage::RuleEventRecord> {
        self.store
            .list_rule_events(self.creds.organization_id, event)
            .await
            .unwrap()
    }

    /// Waits until the event's single rule event reaches `status`.
    pub async fn wait_rule_event(
        &self,
        event: handoff::domain::EventId,
        status: handoff::domain::DeliveryStatus,
        within: std::time::Duration,
    ) -> handoff::storage::RuleEventRecord {
        eventually(within, &format!("rule event {status:?}"), || async {
            self.rule_events(event)
                .await
                .into_iter()
                .find(|r| r.status == status)
        })
        .await
    }

    /// The attempts of a rule event, oldest first.
    pub async fn attempts(
        &self,
        rule_event: handoff::domain::RuleEventId,
    ) -> Vec<handoff::domain::AttemptRecord> {
        let page = handoff::storage::PageRequest {
            limit: 100,
            before: None,
        };
        let mut a = self
            .store
            .list_attempts(self.creds.organization_id, rule_event, page)
            .await
            .unwrap();
        a.reverse();
        a
    }
}
