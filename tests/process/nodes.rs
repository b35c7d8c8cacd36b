//! Roles and several nodes on one database: `handoff api` never delivers; `handoff worker` processes
//! deliver what any API node accepted; two workers together keep each account under its rate limit
//! and never deliver a rule event twice without a failure.

use std::time::Duration;

use handoff::domain::{DeliveryStatus, EventId};
use handoff::sandbox::{AccountOptions, Sandbox, SandboxConfig};
use handoff::storage::testing::TestDb;

use crate::load::{eventually, max_in_any_second};
use crate::process_tests;
use crate::support::{Node, Role, Setup};

process_tests! {
    async fn an_api_node_alone_never_delivers_until_a_worker_node_starts(db: TestDb) {
        let setup = Setup::new(db).await;
        let sandbox = Sandbox::start(SandboxConfig::unlimited()).await.expect("sandbox");
        let account = sandbox.create_account(AccountOptions::named("northstar"));
        let api = setup.start(Role::Api).await;
        let conn = setup.connection(api.addr(), &account, Some(1000)).await;
        setup.rule(api.addr(), &conn, "roles", "api-then-worker").await;
        // Creating the connection checked its key against the account; only deliveries count below.
        sandbox.clear_request_log("northstar");
        let mut events = Vec::new();
        for i in 0..20 {
            let email = format!("user{i}@northstar.io");
            events.push((email.clone(), setup.post_event(api.addr(), "roles", &email).await.expect("201")));
        }
        // "Never" can only be watched for a while: 1 s is twenty poll intervals of a would-be worker.
        let watch_until = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < watch_until {
            for (email, event) in &events {
                let res = setup.rule_events(*event).await;
                assert_eq!(res.len(), 1);
                assert_eq!(res[0].status, DeliveryStatus::Pending, "{email} under `handoff api` alone");
                assert_eq!(res[0].attempt_count, 0);
            }
            assert!(sandbox.request_log("northstar").is_empty(), "the API node called the account");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let _worker = setup.start(Role::Worker).await;
        let ids: Vec<EventId> = events.iter().map(|(_, e)| *e).collect();
        setup.wait_all_completed(&ids, Duration::from_secs(20)).await;
        for (email, _) in &events {
            assert_eq!(sandbox.contact_tags_by_email("northstar", email), ["api-then-worker"], "{email}");
        }
    }
}

/// Waits until `count` worker nodes are registered and each has refreshed its membership since all of
/// them were (it reads the node list right after writing its heartbeat), so every limiter knows its share.
async fn wait_for_settled_workers(db: &TestDb, count: usize) {
    let since = || chrono::Utc::now() - chrono::TimeDelta::seconds(10);
    eventually(
        Duration::from_secs(20),
        "the worker nodes to register",
        || async {
            (db.store
                .live_nodes(since())
                .await
                .expect("live nodes")
                .len()
                == count)
                .then_some(())
        },
    )
    .await;
    let all_present = chrono::Utc::now();
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    eventually(
        Duration::from_secs(10),
        "every worker's next heartbeat",
        || async {
            let oldest: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT min(heartbeat_at) FROM worker_nodes")
                    .fetch_one(&pool)
                    .await
                    .expect("read heartbeats");
            oldest.filter(|t| *t > all_present).map(|_| ())
        },
    )
    .await;
    pool.close().await;
}

/// Delivery attempts a worker logged (at debug level), one line each.
fn logged_attempts(worker: &Node) -> usize {
    worker
        .logs()
        .lines()
        .filter(|l| l.contains("delivery attempt"))
        .count()
}

const ACCOUNTS: usize = 3;
const EVENTS: usize = 60;

/// Two workers and an API node on one PostgreSQL database deliver `EVENTS` events over `ACCOUNTS`
/// accounts (5 requests/s each) with every claim leased for `lease_seconds`.
async fn two_workers_deliver_under_the_limit_once(lease_seconds: &str) {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("skipped: no TEST_DATABASE_URL (several nodes need PostgreSQL)");
        return;
    };
    let setup = Setup::new(db).await;
    // Every account allows the default 5 requests per sliding second.
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let api = setup.start(Role::Api).await;
    let mut accounts = Vec::new();
    for a in 0..ACCOUNTS {
        let account = sandbox.create_account(AccountOptions::named(format!("acct{a}")));
        let conn = setup.connection(api.addr(), &account, None).await;
        setup
            .rule(api.addr(), &conn, &format!("acct{a}"), "multi-node")
            .await;
        accounts.push(account);
    }
    let worker_env = [
        ("HANDOFF__LOG__LEVEL", "warn,handoff::delivery=debug"),
        ("HANDOFF__DELIVERY__LEASE_SECONDS", lease_seconds),
    ];
    let workers = [
        setup.start_with(Role::Worker, &worker_env).await,
        setup.start_with(Role::Worker, &worker_env).await,
    ];
    wait_for_settled_workers(&setup.db, 2).await;
    let mut events = Vec::new();
    for i in 0..EVENTS {
        let account = format!("acct{}", i % ACCOUNTS);
        let email = format!("user{i}@northstar.io");
        let id = setup
            .post_event(api.addr(), &account, &email)
            .await
            .expect("201");
        events.push((account, email, id));
    }
    let ids: Vec<EventId> = events.iter().map(|(_, _, e)| *e).collect();
    let started = std::time::Instant::now();
    setup
        .wait_all_completed(&ids, Duration::from_secs(40))
        .await;
    eprintln!(
        "{EVENTS} events delivered over {ACCOUNTS} accounts in {:?}",
        started.elapsed()
    );

    for account in &accounts {
        let log = sandbox.request_log(&account.name);
        let throttled: Vec<_> = log.iter().filter(|r| r.status == Some(429)).collect();
        assert!(
            throttled.is_empty(),
            "{}: {} requests over the limit: {throttled:?}",
            account.name,
            throttled.len()
        );
        let accepted: Vec<_> = log
            .iter()
            .filter(|r| r.status.is_some_and(|s| s != 429))
            .collect();
        let peak = max_in_any_second(&accepted);
        assert!(
            peak <= 5,
            "{}: {peak} accepted requests in one second",
            account.name
        );
    }
    for (account, email, event) in &events {
        assert_eq!(
            sandbox.contact_tags_by_email(account, email),
            ["multi-node"],
            "{email}"
        );
        let res = setup.rule_events(*event).await;
        assert_eq!(res.len(), 1);
        let attempts = setup.attempts(res[0].id).await;
        assert_eq!(
            attempts.len(),
            1,
            "{email}: a second delivery without a failure: {:?}",
            attempts
                .iter()
                .map(|a| (a.outcome_code, a.error.clone()))
                .collect::<Vec<_>>()
        );
    }
    let per_worker: Vec<usize> = workers.iter().map(logged_attempts).collect();
    eprintln!("attempts logged per worker: {per_worker:?}");
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "a worker delivered nothing: {per_worker:?}"
    );
}

/// With the default lease (60 s) a backlog of 20 deliveries per account drains well inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_nodes_keep_every_account_under_its_limit_and_deliver_each_event_once() {
    two_workers_deliver_under_the_limit_once("60").await;
}

/// The same with the short test lease (5 s, which satisfies the documented rule "longer than the
/// destination timeout times the calls of one attempt": 1 s × 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_nodes_deliver_each_event_once_even_when_the_backlog_outlasts_the_lease() {
    two_workers_deliver_under_the_limit_once("5").await;
}
