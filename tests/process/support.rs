//! Running the real `handoff` binary: a `Setup` (fresh database, master key, credentials from
//! `handoff admin init --json`), `Node` guards for `serve` / `api` / `worker` children (SIGKILLed on
//! drop), and the `process_tests!` macro (SQLite always, PostgreSQL when configured).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use handoff::auth::crypto::MasterKey;
use handoff::domain::{AttemptRecord, DeliveryStatus, EventId, OrganizationId, RuleEventId};
use handoff::sandbox::AccountInfo;
use handoff::storage::testing::TestDb;
use handoff::storage::{PageRequest, RuleEventRecord};
use serde::Deserialize;
use serde_json::{Value, json};

/// Which `handoff` command a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// API and workers.
    Serve,
    /// API only.
    Api,
    /// Workers only (no listener, nothing on stdout).
    Worker,
}

impl Role {
    fn command(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// What `handoff admin init --json` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct Creds {
    pub organization_id: uuid::Uuid,
    pub workspace_id: uuid::Uuid,
    pub access_key: String,
    pub secret_key: String,
    pub publishable_key: String,
}

/// A fresh database with one organization on it, and what every child needs to share it.
pub struct Setup {
    pub db: TestDb,
    pub creds: Creds,
    pub http: reqwest::Client,
    master_key: String,
}

/// Settings every child gets: short timings so crashes, leases and retries play out in seconds.
const BASE_ENV: &[(&str, &str)] = &[
    ("HANDOFF__SERVER__BIND", "127.0.0.1:0"),
    ("HANDOFF__DESTINATIONS__ALLOW_PRIVATE_NETWORKS", "true"),
    ("HANDOFF__DESTINATIONS__TIMEOUT_MS", "1000"),
    ("HANDOFF__DELIVERY__LEASE_SECONDS", "5"),
    ("HANDOFF__DELIVERY__POLL_INTERVAL_MS", "50"),
    ("HANDOFF__RETRY__SCHEDULE_SECONDS", "[1, 1, 2]"),
    ("HANDOFF__LOG__LEVEL", "warn"),
];

/// How long a child gets to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(20);

impl Setup {
    /// Runs `handoff admin init --json` on `db` (before any `serve`, so serve finds a tenant and does
    /// not create a second one) with a master key of its own.
    pub async fn new(db: TestDb) -> Setup {
        let (_, master_key) = MasterKey::generate();
        let mut setup = Setup {
            db,
            creds: Creds {
                organization_id: uuid::Uuid::nil(),
                workspace_id: uuid::Uuid::nil(),
                access_key: String::new(),
                secret_key: String::new(),
                publishable_key: String::new(),
            },
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            master_key,
        };
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_handoff"));
        cmd.args(["admin", "init", "--json"]);
        for (k, v) in setup.env(&[]) {
            cmd.env(k, v);
        }
        clean_env(cmd.as_std_mut());
        let out = tokio::time::timeout(START_DEADLINE, cmd.output())
            .await
            .expect("admin init finishes in time")
            .expect("admin init runs");
        assert!(
            out.status.success(),
            "admin init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        setup.creds = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "admin init --json printed {:?}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        setup
    }

    /// The environment of a child: the database, the master key, the short timings, then `extra`.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            ("HANDOFF__DATABASE__URL".into(), self.db.url.clone()),
            (
                "HANDOFF__SECURITY__MASTER_KEY".into(),
                self.master_key.clone(),
            ),
        ];
        vars.extend(
            BASE_ENV
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        vars
    }

    /// Starts `handoff <role>` with the base settings.
    pub async fn start(&self, role: Role) -> Node {
        self.start_with(role, &[]).await
    }

    /// Starts `handoff <role>` with `extra` settings over the base ones; for `serve` and `api`, returns
    /// once the child printed the address it listens on.
    pub async fn start_with(&self, role: Role, extra: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_handoff"));
        cmd.arg(role.command())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        clean_env(&mut cmd);
        // Plain logs: tests search them.
        cmd.env("NO_COLOR", "1");
        for (k, v) in self.env(extra) {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn handoff");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let out = child.stdout.take().expect("piped stdout");
        // Readers drain both pipes to the end so a chatty child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut node = Node {
            child,
            role,
            addr: None,
            stderr,
            exited: None,
        };
        if role == Role::Worker {
            return node;
        }
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            let line = match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!(
                    "handoff {} exited before listening: {}",
                    role.command(),
                    node.logs()
                ),
                Err(_) => panic!(
                    "handoff {} did not listen within {START_DEADLINE:?}: {}",
                    role.command(),
                    node.logs()
                ),
            };
            if let Some(addr) = line.strip_prefix("Handoff listening on http://") {
                node.addr = Some(addr.trim().parse().expect("a socket address"));
                return node;
            }
        }
    }

    /// The organization `admin init` created.
    pub fn org(&self) -> OrganizationId {
        self.creds.organization_id.into()
    }

    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.creds.access_key, self.creds.secret_key);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Creates an ActiveCampaign connection to `account` through `api`; `rate_limit` sets
    /// `metadata.rate_limit_per_second` (the default 5/s otherwise). Returns its id.
    pub async fn connection(
        &self,
        api: SocketAddr,
        account: &AccountInfo,
        rate_limit: Option<u32>,
    ) -> String {
        let mut metadata = json!({"api_url": account.api_url, "api_key": account.token});
        if let Some(limit) = rate_limit {
            metadata["rate_limit_per_second"] = json!(limit);
        }
        let body = json!({"workspace": self.creds.workspace_id.to_string(), "type": "activecampaign",
                          "name": format!("AC {}", account.name), "metadata": metadata});
        let v = self.manage(api, "/api/v1/connections", &body).await;
        v["connection"]["id"]
            .as_str()
            .expect("a connection id")
            .to_owned()
    }

    /// Creates a rule: `page.completed` with `resource_id` → add `tag` through `connection`.
    pub async fn rule(
        &self,
        api: SocketAddr,
        connection: &str,
        resource_id: &str,
        tag: &str,
    ) -> String {
        let body = json!({"workspace": self.creds.workspace_id.to_string(), "connection": connection,
                          "event": "page.completed", "resource_id": resource_id,
                          "metadata": {"action": "add_tag", "tag": tag}});
        let v = self.manage(api, "/api/v1/rules", &body).await;
        v["rule"]["id"].as_str().expect("a rule id").to_owned()
    }

    async fn manage(&self, api: SocketAddr, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("http://{api}{path}"))
            .header("Authorization", self.basic())
            .json(body)
            .send()
            .await
            .expect("a management call answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "POST {path}: {text}");
        serde_json::from_str(&text).expect("a JSON body")
    }

    /// POSTs one event; `Ok(id)` only for a 201.
    pub async fn post_event(
        &self,
        api: SocketAddr,
        resource_id: &str,
        email: &str,
    ) -> Result<EventId, String> {
        post_event(
            &self.http,
            api,
            &self.creds.publishable_key,
            resource_id,
            email,
        )
        .await
    }

    /// The event's rule events as stored now.
    pub async fn rule_events(&self, event: EventId) -> Vec<RuleEventRecord> {
        self.db
            .store
            .list_rule_events(self.org(), event)
            .await
            .expect("list rule events")
    }

    /// A rule event's attempts, oldest first.
    pub async fn attempts(&self, rule_event: RuleEventId) -> Vec<AttemptRecord> {
        let page = PageRequest {
            limit: 100,
            before: None,
        };
        let mut a = self
            .db
            .store
            .list_attempts(self.org(), rule_event, page)
            .await
            .expect("list attempts");
        a.reverse();
        a
    }

    /// Waits until every event in `events` has all its rule events `completed`; each round re-reads
    /// only the events not yet done.
    pub async fn wait_all_completed(&self, events: &[EventId], within: Duration) {
        let deadline = Instant::now() + within;
        let mut left: Vec<EventId> = events.to_vec();
        loop {
            let mut still = Vec::new();
            for &e in &left {
                let res = self.rule_events(e).await;
                if res.is_empty() || res.iter().any(|r| r.status != DeliveryStatus::Completed) {
                    still.push(e);
                }
            }
            left = still;
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let sample = self.rule_events(left[0]).await;
                panic!(
                    "{} of {} events not completed within {within:?}; e.g. {:?}: {:?}",
                    left.len(),
                    events.len(),
                    left[0],
                    sample
                        .iter()
                        .map(|r| (r.status, r.attempt_count, r.last_error.clone()))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drops inherited settings that would override the child's own (a developer's `DATABASE_URL`,
/// `RUST_LOG`, `HANDOFF__…`).
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("HANDOFF")
            || name == "DATABASE_URL"
            || name == "RUST_LOG"
            || name == "TEST_DATABASE_URL"
        {
            cmd.env_remove(&k);
        }
    }
}

pub async fn post_event(
    http: &reqwest::Client,
    api: SocketAddr,
    publishable_key: &str,
    resource_id: &str,
    email: &str,
) -> Result<EventId, String> {
    let body = json!({"event": "page.completed", "resource": "onboarding_sequence", "resource_id": resource_id,
                      "payload": {"email": email, "first_name": "Alex", "sequence_step": 3}});
    let resp = http
        .post(format!("http://{api}/api/v1/events"))
        .header("X-Meshes-Publishable-Key", publishable_key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{email}: {e}"))?;
    let status = resp.status();
    if status != 201 {
        return Err(format!("{email}: {status}"));
    }
    let v: Value = resp.json().await.map_err(|e| format!("{email}: {e}"))?;
    let id: uuid::Uuid = v["event"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{email}: no event id in {v}"))?;
    Ok(id.into())
}

/// A running `handoff` child; SIGKILLed when dropped, so a failing test leaves nothing behind.
pub struct Node {
    child: Child,
    pub role: Role,
    /// Where `serve` / `api` listens.
    pub addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
}

impl Node {
    /// The listening address (`serve` and `api` only).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("this role listens")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stderr so far (its logs).
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status);
        }
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits at most `within` for the child to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.kill();
        }
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: String = logs
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!(
                "--- handoff {} stderr (tail) ---\n{tail}",
                self.role.command()
            );
        }
    }
}

/// Runs a test body against SQLite, and against PostgreSQL when `TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! process_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($db:ident : TestDb) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($db: handoff::storage::testing::TestDb) $body

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    body(handoff::storage::testing::TestDb::sqlite().await).await;
                }

                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = handoff::storage::testing::TestDb::postgres().await else {
                        eprintln!("skipped: no TEST_DATABASE_URL");
                        return;
                    };
                    body(db).await;
                }
            }
        )*
    };
}
