//! Test support: a fresh, migrated database per test on either backend, and `backend_tests!`
//! to run one test body against both. Compiled always so integration tests in `tests/` can use it.

use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use super::{ConnectOptions, Store, connect};

/// A fresh, migrated database that is removed when dropped.
pub struct TestDb {
    /// The URL the store was opened with (another store may be opened on it, e.g. by an app under test).
    pub url: String,
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The temporary directory holding the SQLite file and its WAL files.
    Sqlite(PathBuf),
    /// The server's maintenance URL and the database to drop.
    Postgres { admin_url: String, database: String },
}

impl TestDb {
    /// A new SQLite database in a fresh directory under the system temp dir.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("handoff-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the test database directory");
        let url = format!("sqlite://{}", dir.join("handoff.db").display());
        let store = connect(&url, ConnectOptions::default())
            .await
            .expect("open the test SQLite database");
        store
            .migrate()
            .await
            .expect("migrate the test SQLite database");
        TestDb {
            url,
            store,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new database `handoff_test_<uuid>` on the server named by `TEST_DATABASE_URL` (or
    /// `DATABASE_URL`); `None` when neither is set.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .ok()
            .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))?;
        Some(Self::postgres_on(&admin_url).await)
    }

    /// A new, migrated database `handoff_test_<uuid>` on the server `admin_url` points at, dropped on
    /// `Drop`. Benchmarks use it for a clean database per run.
    pub async fn postgres_on(admin_url: &str) -> TestDb {
        let admin_url = admin_url.to_owned();
        let database = format!("handoff_test_{}", Uuid::new_v4().simple());
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&pool)
            .await
            .expect("create the test database");
        pool.close().await;
        let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&database);
        let url = url.to_string();
        let store = connect(&url, ConnectOptions::default())
            .await
            .expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        TestDb {
            url,
            store,
            cleanup: Cleanup::Postgres {
                admin_url,
                database,
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres {
                admin_url,
                database,
            } => {
                let (admin_url, database) = (admin_url.clone(), database.clone());
                // A thread with its own runtime: Drop may run inside or outside a runtime, and must
                // not block one it does not own.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("build a runtime to drop the test database");
                    runtime.block_on(async {
                        let pool = sqlx::postgres::PgPoolOptions::new()
                            .max_connections(1)
                            .connect(&admin_url)
                            .await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&pool)
                            .await?;
                        pool.close().await;
                        Ok::<_, sqlx::Error>(())
                    })
                })
                .join();
                if let Ok(Err(err)) = dropped {
                    eprintln!("could not drop test database {}: {err}", self.url);
                }
            }
        }
    }
}

/// Runs each test body against SQLite and PostgreSQL: every
/// `async fn name(db: TestDb) { … }` becomes a module `name` with tests `sqlite` and `postgres`
/// (the latter prints "skipped: no TEST_DATABASE_URL" and passes when no server is configured).
/// Attributes before `async fn` (e.g. `#[tokio::test(flavor = "multi_thread")]`) replace the
/// default `#[tokio::test]`.
#[macro_export]
macro_rules! backend_tests {
    ($(
        $(#[$attr:meta])*
        async fn $name:ident($db:ident : $ty:ty) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: $ty) $body

            $crate::backend_tests!(@test [$(#[$attr])*] sqlite {
                body($crate::storage::testing::TestDb::sqlite().await).await
            });

            $crate::backend_tests!(@test [$(#[$attr])*] postgres {
                match $crate::storage::testing::TestDb::postgres().await {
                    Some(db) => body(db).await,
                    None => eprintln!("skipped: no TEST_DATABASE_URL"),
                }
            });
        }
    )*};
    (@test [] $variant:ident $run:block) => {
        #[::tokio::test]
        async fn $variant() $run
    };
    (@test [$(#[$attr:meta])+] $variant:ident $run:block) => {
        $(#[$attr])+
        async fn $variant() $run
    };
}

/// A complete tenant (organization, workspace, machine key, active publishable key) with fresh
/// ids and unique key strings, not yet stored.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub organization: crate::domain::Organization,
    pub workspace: crate::domain::Workspace,
    pub machine_key: crate::domain::MachineKey,
    pub publishable_key: crate::domain::PublishableKey,
}

impl Tenant {
    /// A new tenant whose workspace is named `Production`.
    pub fn new() -> Self {
        use crate::domain::*;
        let now = now();
        let organization = Organization {
            id: OrganizationId::new_v4(),
            name: "Northstar".into(),
            created_at: now,
        };
        let workspace = Workspace {
            id: WorkspaceId::new_v7(),
            organization_id: organization.id,
            name: "Production".into(),
            description: Some("Live traffic".into()),
            created_at: now,
            updated_at: now,
        };
        let machine_key = MachineKey {
            access_key: format!("mk_{}", Uuid::new_v4().simple()),
            organization_id: organization.id,
            secret_ciphertext: Uuid::new_v4().as_bytes().to_vec(),
            created_at: now,
        };
        let publishable_key = publishable_key_for(&workspace);
        Self {
            organization,
            workspace,
            machine_key,
            publishable_key,
        }
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Self::new()
    }
}

/// A new (not stored) publishable key for `workspace`, with a unique `mesh_pub_…` string.
pub fn publishable_key_for(workspace: &crate::domain::Workspace) -> crate::domain::PublishableKey {
    use crate::domain::*;
    PublishableKey {
        id: PublishableKeyId::new_v7(),
        organization_id: workspace.organization_id,
        workspace_id: workspace.id,
        public_key: format!(
            "mesh_pub_{}_{}_{}",
            workspace.organization_id.0.simple(),
            workspace.id.0.simple(),
            Uuid::new_v4().simple()
        ),
        name: "default".into(),
        created_at: now(),
    }
}

impl TestDb {
    /// Stores a new tenant and returns it.
    pub async fn tenant(&self) -> Tenant {
        let tenant = Tenant::new();
        self.store
            .create_tenant(
                &tenant.organization,
                &tenant.workspace,
                &tenant.machine_key,
                &tenant.publishable_key,
            )
            .await
            .expect("create a test tenant");
        tenant
    }
}

/// A new (not stored) ActiveCampaign connection in `workspace`, with a unique sealed-key stand-in.
pub fn connection_for(workspace: &crate::domain::Workspace) -> crate::domain::Connection {
    use crate::domain::*;
    let now = now();
    Connection {
        id: ConnectionId::new_v7(),
        organization_id: workspace.organization_id,
        workspace_id: workspace.id,
        integration_type: "activecampaign".into(),
        name: "Northstar ActiveCampaign".into(),
        api_url: "https://northstar.api-us1.com".into(),
        api_key_ciphertext: Uuid::new_v4().as_bytes().to_vec(),
        rate_limit_per_second: None,
        hidden: false,
        active: true,
        inactive_reason: None,
        created_by: "machine_key".into(),
        created_at: now,
        updated_at: now,
    }
}

/// A new (not stored) active rule: `page.completed` on `onboarding_sequence` → add a tag through
/// `connection`, in the connection's workspace.
pub fn rule_for(connection: &crate::domain::Connection) -> crate::domain::Rule {
    use crate::domain::*;
    let now = now();
    Rule {
        id: RuleId::new_v7(),
        organization_id: connection.organization_id,
        workspace_id: connection.workspace_id,
        connection_id: connection.id,
        integration_type: connection.integration_type.clone(),
        event: "page.completed".into(),
        resource: Some("onboarding_sequence".into()),
        resource_id: None,
        metadata: serde_json::json!({"action": "add_tag", "tag": "onboarding-step-{{payload.step}}"}),
        conditions: serde_json::json!([]),
        active: true,
        hidden: false,
        created_by: "machine_key".into(),
        created_at: now,
        updated_at: now,
    }
}

impl TestDb {
    /// Stores a new connection in `workspace` and returns it.
    pub async fn connection(
        &self,
        workspace: &crate::domain::Workspace,
    ) -> crate::domain::Connection {
        let connection = connection_for(workspace);
        self.store
            .create_connection(&connection)
            .await
            .expect("create a test connection");
        connection
    }

    /// Stores a new rule through `connection` and returns it.
    pub async fn rule(&self, connection: &crate::domain::Connection) -> crate::domain::Rule {
        let rule = rule_for(connection);
        self.store
            .create_rule(&rule)
            .await
            .expect("create a test rule");
        rule
    }
}

/// A new (not stored) `page.completed` event in `workspace` with one pending delivery per rule,
/// due at its creation (now).
pub fn event_through(
    workspace: &crate::domain::Workspace,
    rules: &[&crate::domain::Rule],
) -> crate::domain::NewEvent {
    use crate::domain::*;
    NewEvent {
        id: EventId::new_v7(),
        organization_id: workspace.organization_id,
        workspace_id: workspace.id,
        event: "page.completed".into(),
        resource: "onboarding_sequence".into(),
        resource_id: Some("workspace-setup".into()),
        payload: serde_json::json!({"email": "alex@northstar.io", "first_name": "Alex", "step": 3}),
        contact_email: Some("alex@northstar.io".into()),
        created_by: "publishable_key".into(),
        created_at: now(),
        status: if rules.is_empty() {
            DeliveryStatus::Completed
        } else {
            DeliveryStatus::Pending
        },
        rule_events: rules
            .iter()
            .map(|rule| NewRuleEvent {
                id: RuleEventId::new_v7(),
                rule_id: rule.id,
                connection_id: rule.connection_id,
                integration_type: rule.integration_type.clone(),
            })
            .collect(),
        idempotency: None,
    }
}

/// The record of the next attempt at a claimed delivery, with `outcome` (a 200 with two calls
/// when delivered; otherwise a 500 and an error).
pub fn attempt_for(
    claim: &crate::domain::ClaimedDelivery,
    outcome: crate::domain::OutcomeCode,
) -> crate::domain::AttemptRecord {
    use crate::domain::*;
    let delivered = outcome == OutcomeCode::Delivered;
    let status = if delivered { 200 } else { 500 };
    AttemptRecord {
        id: AttemptId::new_v7(),
        organization_id: claim.organization_id,
        workspace_id: claim.workspace_id,
        event_id: claim.event_id,
        rule_event_id: claim.rule_event_id,
        attempt_number: claim.attempt_count + 1,
        started_at: now(),
        duration_ms: 42,
        outcome_code: outcome,
        http_status: Some(status),
        error: (!delivered).then(|| format!("ActiveCampaign answered {status}")),
        calls: vec![
            CallRecord {
                method: "POST".into(),
                path: "/api/3/contact/sync".into(),
                status: Some(200),
                duration_ms: 20,
                response_excerpt: r#"{"contact":{"id":"1"}}"#.into(),
            },
            CallRecord {
                method: "POST".into(),
                path: "/api/3/contactTags".into(),
                status: Some(status),
                duration_ms: 22,
                response_excerpt: String::new(),
            },
        ],
        is_test: false,
    }
}
