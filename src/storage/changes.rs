//! The rule change feed: how every rule cache learns that a workspace's rules or connections
//! changed. PostgreSQL carries it over `LISTEN/NOTIFY` (every node); SQLite over an in-process
//! broadcast shared by every store on the same file. Both hand each subscriber its own bounded
//! `mpsc` receiver fed by a background task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, watch};

use crate::domain::{RuleChange, WorkspaceId};

/// The PostgreSQL notification channel; the payload is the workspace id as text.
pub(crate) const CHANNEL: &str = "handoff_rule_changes";

/// The payload that announces committed deliveries rather than a workspace's rule change.
pub(crate) const DELIVERIES_DUE: &str = "deliveries";

/// Changes a subscriber may have unread before they are collapsed into one `All`.
const SUBSCRIBER_BUFFER: usize = 64;

/// Changes the SQLite broadcast keeps for a slow bridge before it reports a lag (→ `All`).
const BROADCAST_BUFFER: usize = 256;

/// Bounds of the wait between attempts to re-open a lost PostgreSQL listener.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Held (behind an `Arc`) by a store and each of its clones: when the last one is dropped,
/// every feed the store started ends.
pub(crate) type Alive = Arc<watch::Sender<()>>;

pub(crate) fn alive() -> Alive {
    Arc::new(watch::channel(()).0)
}

/// Resolves when the store that owns `alive` is gone.
async fn store_dropped(alive: &mut watch::Receiver<()>) {
    // Nobody sends on the channel: `changed` only returns when the sender is dropped.
    while alive.changed().await.is_ok() {}
}

/// Passes a change on; false when the receiver is gone. A subscriber whose buffer is full is
/// behind anyway: one `All` supersedes whatever it has not read yet, so memory stays bounded.
async fn deliver(tx: &mpsc::Sender<RuleChange>, change: RuleChange) -> bool {
    match tx.try_send(change) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => false,
        Err(TrySendError::Full(_)) => tx.send(RuleChange::All).await.is_ok(),
    }
}

/// One broadcast per SQLite file, shared by every store of this process opened on it, so a change
/// made through one is announced on all (as PostgreSQL does across nodes).
pub(crate) type Hub = Arc<broadcast::Sender<RuleChange>>;

static HUBS: LazyLock<Mutex<HashMap<PathBuf, Weak<broadcast::Sender<RuleChange>>>>> =
    LazyLock::new(Default::default);

/// The hub of the database file at `path` (which exists).
pub(crate) fn hub(path: &Path) -> Hub {
    // Two spellings of one file must meet on one hub.
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut hubs = HUBS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    hubs.retain(|_, hub| hub.strong_count() > 0);
    if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
        return hub;
    }
    let hub = Arc::new(broadcast::channel(BROADCAST_BUFFER).0);
    hubs.insert(key, Arc::downgrade(&hub));
    hub
}

/// A new subscriber of an SQLite hub. Subscribes before returning, so nothing published after
/// this call is missed.
pub(crate) fn bridge(hub: &Hub, alive: &Alive) -> mpsc::Receiver<RuleChange> {
    let mut source = hub.subscribe();
    let mut alive = alive.subscribe();
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                () = tx.closed() => break,
                () = store_dropped(&mut alive) => break,
                received = source.recv() => match received {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => RuleChange::All,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if !deliver(&tx, change).await {
                break;
            }
        }
    });
    rx
}

/// A new PostgreSQL subscriber: a listener on its own connection (so it never takes one from the
/// store's pool), `LISTEN`ing before this returns.
pub(crate) async fn listen(
    options: PgConnectOptions,
    alive: &Alive,
) -> Result<mpsc::Receiver<RuleChange>, sqlx::Error> {
    // A private pool of one: PgListener reconnects through it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    let listener = open_listener(&pool).await?;
    let alive = alive.subscribe();
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    tokio::spawn(run_listener(pool, listener, tx, alive));
    Ok(rx)
}

async fn open_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// What the listener task waits for.
enum Wake {
    Stop,
    Received(Result<Option<sqlx::postgres::PgNotification>, sqlx::Error>),
}

async fn run_listener(
    pool: PgPool,
    mut listener: PgListener,
    tx: mpsc::Sender<RuleChange>,
    mut alive: watch::Receiver<()>,
) {
    loop {
        let wake = tokio::select! {
            () = tx.closed() => Wake::Stop,
            () = store_dropped(&mut alive) => Wake::Stop,
            received = listener.try_recv() => Wake::Received(received),
        };
        let change = match wake {
            Wake::Stop => return,
            Wake::Received(Ok(Some(notification))) if notification.payload() == DELIVERIES_DUE => {
                RuleChange::DeliveriesDue
            }
            Wake::Received(Ok(Some(notification))) => {
                match notification.payload().parse().map(WorkspaceId) {
                    Ok(workspace) => RuleChange::Workspace(workspace),
                    // Not ours to interpret: staying correct means dropping everything.
                    Err(_) => RuleChange::All,
                }
            }
            // The connection was lost and PgListener has already reconnected and listens again:
            // whatever was announced in between is lost.
            Wake::Received(Ok(None)) => {
                tracing::info!("rule change listener reconnected; announcing a full reload");
                RuleChange::All
            }
            // The connection failed in a way PgListener does not recover from by itself (e.g.
            // the server terminated it, or reconnecting failed): start over with a fresh one.
            Wake::Received(Err(err)) => {
                tracing::warn!(error = %err, "rule change listener lost its connection");
                drop(listener);
                match reopen(&pool, &tx, &mut alive).await {
                    Some(fresh) => listener = fresh,
                    None => return,
                }
                RuleChange::All
            }
        };
        if !deliver(&tx, change).await {
            return;
        }
    }
}

/// Opens a new listener, backing off between attempts; `None` when the subscriber or the store
/// went away meanwhile.
async fn reopen(
    pool: &PgPool,
    tx: &mpsc::Sender<RuleChange>,
    alive: &mut watch::Receiver<()>,
) -> Option<PgListener> {
    let mut wait = RECONNECT_FIRST;
    loop {
        let attempt = tokio::select! {
            () = tx.closed() => return None,
            () = store_dropped(alive) => return None,
            attempt = open_listener(pool) => attempt,
        };
        match attempt {
            Ok(listener) => {
                tracing::info!("rule change listener reconnected; announcing a full reload");
                return Some(listener);
            }
            Err(err) => tracing::warn!(error = %err, "rule change listener cannot reconnect yet"),
        }
        tokio::select! {
            () = tx.closed() => return None,
            () = store_dropped(alive) => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn workspace() -> RuleChange {
        RuleChange::Workspace(WorkspaceId::new_v7())
    }

    #[tokio::test]
    async fn a_full_subscriber_gets_one_all_instead_of_what_it_missed() {
        let (tx, mut rx) = mpsc::channel(1);
        let first = workspace();
        assert!(deliver(&tx, first).await);

        let second = deliver(&tx, workspace());
        tokio::pin!(second);
        // Polled once: the buffer is full, so it waits to hand over the `All`.
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(second.as_mut().poll(cx))).await;
        assert!(polled.is_pending());

        assert_eq!(rx.recv().await, Some(first));
        assert!(second.await);
        assert_eq!(rx.recv().await, Some(RuleChange::All));
    }

    #[tokio::test]
    async fn delivering_to_a_dropped_receiver_says_so() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        assert!(!deliver(&tx, workspace()).await);
    }

    #[tokio::test]
    async fn a_bridge_that_lagged_behind_the_hub_announces_all_first() {
        let hub: Hub = Arc::new(broadcast::channel(4).0);
        let alive = alive();
        let mut feed = bridge(&hub, &alive);
        // The current-thread runtime has not run the bridge yet: it will find itself lagging.
        for _ in 0..10 {
            hub.send(workspace()).unwrap();
        }

        assert_eq!(feed.recv().await, Some(RuleChange::All));
        drop(alive);
        // What was still buffered may follow; then the feed ends.
        while let Some(change) = feed.recv().await {
            assert!(matches!(change, RuleChange::Workspace(_)), "{change:?}");
        }
    }

    #[tokio::test]
    async fn stores_on_one_file_share_a_hub_and_others_do_not() {
        let dir =
            std::env::temp_dir().join(format!("handoff-hub-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.db");
        std::fs::write(&file, b"").unwrap();
        std::fs::write(dir.join("b.db"), b"").unwrap();

        let first = hub(&file);
        let again = hub(&dir.join(".").join("a.db"));
        let other = hub(&dir.join("b.db"));

        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &other));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
