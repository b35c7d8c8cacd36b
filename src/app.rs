//! Building and running the service: storage, master key, group-commit ingest, the HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::crypto::MasterKey;
use crate::config::Config;
use crate::destinations::net;
use crate::http::{AppState, Inner};
use crate::ingest::ratelimit::KeyRateLimiter;
use crate::ingest::rule_cache::RuleCache;
use crate::ingest::{Batcher, Committers};
use crate::shutdown::Shutdown;
use crate::storage::{self, ConnectOptions, Store};

/// Opens the configured database (creating the embedded one when needed) and migrates it.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let store = storage::connect(
        &url,
        ConnectOptions {
            max_connections: config.database.max_connections,
        },
    )
    .await
    .with_context(|| {
        format!(
            "opening the {} database",
            if config.is_embedded() {
                "SQLite"
            } else {
                "PostgreSQL"
            }
        )
    })?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// The master key: from config, or (embedded mode only) generated into the data directory.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if !config.security.master_key.is_empty() {
        return MasterKey::from_base64(&config.security.master_key)
            .context("security.master_key (HANDOFF__SECURITY__MASTER_KEY)");
    }
    if config.is_embedded() {
        let path = config.storage.data_dir.join("master.key");
        return MasterKey::load_or_generate(&path).context("the embedded master key file");
    }
    anyhow::bail!(
        "HANDOFF__SECURITY__MASTER_KEY is required with PostgreSQL (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
    )
}

/// A built application: the bound listener and everything behind it.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    committers: Committers,
    grace: Duration,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and starts the ingest committers.
    pub async fn build(
        config: &Config,
        store: Arc<dyn Store>,
        master_key: MasterKey,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.server.bind)
            .await
            .with_context(|| format!("binding {}", config.server.bind))?;
        // SQLite has one writer: more committers would only queue on its lock.
        let committers = if store.backend() == "sqlite" {
            1
        } else {
            config.ingest.committers
        };
        let (batcher, committers) =
            Batcher::start(store.clone(), committers, config.ingest.max_batch);
        let rule_cache = RuleCache::start(store.clone())
            .await
            .context("subscribing to rule changes")?;
        let d = config.destinations.clone();
        let state = AppState::new(Inner {
            rule_cache,
            destination_http: net::http_client(
                d.allow_private_networks,
                Duration::from_millis(d.connect_timeout_ms),
            ),
            destinations: d,
            store,
            master_key: Arc::new(master_key),
            batcher,
            ingest_limiter: KeyRateLimiter::new(config.ingest.rate_limit_per_second),
        });
        Ok(Self {
            listener,
            state,
            committers,
            grace: Duration::from_secs(config.server.shutdown_grace_seconds),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` triggers, then stops accepting, lets in-flight requests finish
    /// (bounded by the grace period) and commits everything already queued.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, "listening");
        let router = crate::http::router(self.state);
        let stop = shutdown.clone();
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { stop.wait().await });
        let grace = self.grace;
        let drained = async {
            shutdown.wait().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            _ = drained => tracing::warn!("grace period over; closing remaining connections"),
        }
        // The router (and with it every Batcher clone) is gone: the committers finish the queue and stop.
        self.committers.join().await;
        tracing::info!("stopped");
        Ok(())
    }
}
