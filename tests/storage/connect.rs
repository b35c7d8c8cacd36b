//! Opening stores by URL, migrations and readiness.

use handoff::backend_tests;
use handoff::storage::testing::TestDb;
use handoff::storage::{ConnectOptions, StorageError, connect};

backend_tests! {
    async fn migrating_twice_is_a_no_op_and_the_store_is_ready(db: TestDb) {
        db.store.migrate().await.unwrap();
        db.store.migrate().await.unwrap();
        db.store.ready().await.unwrap();
    }

    async fn a_second_store_on_the_same_url_sees_the_same_data(db: TestDb) {
        let tenant = db.tenant().await;
        let again = connect(&db.url, ConnectOptions::default()).await.unwrap();
        again.ready().await.unwrap();
        let key = again.find_machine_key(&tenant.machine_key.access_key).await.unwrap();
        assert_eq!(key, Some(tenant.machine_key));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("handoff-connect-{}", uuid::Uuid::new_v4().simple()));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_sqlite_url_creates_the_file_and_its_directories() {
    let dir = TempDir::new();
    let file = dir.0.join("nested/data/handoff.db");
    for url in [
        format!("sqlite:{}", file.display()),
        format!("sqlite://{}", file.display()),
    ] {
        let store = connect(&url, ConnectOptions::default()).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        store.migrate().await.unwrap();
        store.ready().await.unwrap();
        assert!(file.exists(), "{url}");
    }
}

#[tokio::test]
async fn an_unmigrated_database_is_not_ready() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("handoff.db").display());
    let store = connect(&url, ConnectOptions::default()).await.unwrap();

    let err = store.ready().await.unwrap_err();

    assert!(
        matches!(err, StorageError::NotMigrated(n) if n >= 1),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_scheme_is_unsupported_and_does_not_echo_credentials() {
    for url in [
        "mysql://root:hunter2@localhost/db",
        "handoff.db",
        "",
        "sqlite::memory:",
    ] {
        let err = connect(url, ConnectOptions::default())
            .await
            .err()
            .expect(url);
        let StorageError::UnsupportedUrl(message) = &err else {
            panic!("{url}: {err:?}")
        };
        assert!(!message.contains("hunter2"), "{message}");
    }
}
