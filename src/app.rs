//! Building and running the service: storage, master key, group-commit ingest, the HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::crypto::MasterKey;
use crate::config::Config;
use crate::delivery::pool::{self, PoolConfig, PoolParts};
use crate::delivery::ratelimit::AccountLimiter;
use crate::delivery::retry::RetryPolicy;
use crate::destinations::activecampaign::{AcDestination, AccountCache};
use crate::destinations::net;
use crate::http::{AppState, Inner};
use crate::ingest::ratelimit::KeyRateLimiter;
use crate::ingest::rule_cache::RuleCache;
use crate::ingest::{Batcher, Committers};
use crate::metrics::Metrics;
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
    /// Delivery workers beside the API (`handoff serve`), or none (`handoff api`).
    workers: Option<PoolConfig>,
    retry: RetryPolicy,
    rate_margin: Duration,
    destination: AcDestination,
}

/// The delivery settings of `config`.
pub fn pool_config(config: &Config) -> PoolConfig {
    let d = &config.delivery;
    PoolConfig {
        concurrency: d.concurrency,
        batch: d.batch,
        per_connection: d.per_connection,
        lease: Duration::from_secs(d.lease_seconds),
        poll_interval: Duration::from_millis(d.poll_interval_ms),
        default_rate_limit: d.default_rate_limit,
        ..PoolConfig::default()
    }
}

/// The retry policy of `config`.
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        schedule: config
            .retry
            .schedule_seconds
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
        jitter: config.retry.jitter,
        max_retry_after: Duration::from_secs(config.retry.max_retry_after_seconds),
        ..RetryPolicy::default()
    }
}

/// The ActiveCampaign destination with the configured timeouts and network policy.
pub fn destination(config: &Config, http: reqwest::Client) -> AcDestination {
    AcDestination::new(
        http,
        AccountCache::new(),
        Duration::from_millis(config.destinations.timeout_ms),
        config.destinations.allow_private_networks,
    )
}

/// Runs delivery workers alone (`handoff worker`) until `shutdown`, with the operations endpoints
/// on `delivery.ops_bind` when it is set.
pub async fn run_workers(
    config: &Config,
    store: Arc<dyn Store>,
    master_key: MasterKey,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let ops = if config.delivery.ops_bind.is_empty() {
        None
    } else {
        let listener = TcpListener::bind(&config.delivery.ops_bind)
            .await
            .with_context(|| format!("binding delivery.ops_bind {}", config.delivery.ops_bind))?;
        Some(listener)
    };
    run_workers_on(config, store, master_key, shutdown, ops).await
}

/// [`run_workers`] with the operations listener (if any) bound by the caller (port 0 in tests).
pub async fn run_workers_on(
    config: &Config,
    store: Arc<dyn Store>,
    master_key: MasterKey,
    shutdown: Shutdown,
    ops: Option<TcpListener>,
) -> anyhow::Result<()> {
    let http = net::http_client(
        config.destinations.allow_private_networks,
        Duration::from_millis(config.destinations.connect_timeout_ms),
    );
    let metrics = Arc::new(Metrics::new());
    let parts = PoolParts {
        store: store.clone(),
        master_key: Arc::new(master_key),
        destination: destination(config, http),
        limiter: Arc::new(AccountLimiter::new(Duration::from_millis(
            config.delivery.rate_limit_margin_ms,
        ))),
        policy: retry_policy(config),
        wake: Arc::new(tokio::sync::Notify::new()),
        metrics: metrics.clone(),
    };
    let ops_server = ops.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "operations endpoints listening (healthz, readyz, metrics)");
        }
        let router = crate::http::ops::ops_router(crate::http::ops::OpsState { store, metrics });
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await
        })
    });
    let result = pool::run(parts, pool_config(config), shutdown.clone()).await;
    shutdown.trigger();
    if let Some(server) = ops_server {
        server.await?.context("serving the operations endpoints")?;
    }
    result
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
        Self::build_on(listener, config, store, master_key).await
    }

    /// Like [`Self::build`], on a listener the caller bound (`handoff demo` binds before it touches
    /// its data directory, so a second demo on the same port fails before deleting anything).
    pub async fn build_on(
        listener: TcpListener,
        config: &Config,
        store: Arc<dyn Store>,
        master_key: MasterKey,
    ) -> anyhow::Result<Self> {
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
            delivery_wake: Arc::new(tokio::sync::Notify::new()),
            store,
            master_key: Arc::new(master_key),
            batcher,
            ingest_limiter: KeyRateLimiter::new(config.ingest.rate_limit_per_second),
            metrics: Arc::new(Metrics::new()),
        });
        Ok(Self {
            listener,
            committers,
            grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            workers: Some(pool_config(config)),
            retry: retry_policy(config),
            rate_margin: Duration::from_millis(config.delivery.rate_limit_margin_ms),
            destination: destination(config, state.destination_http.clone()),
            state,
        })
    }

    /// Serve the API only (`handoff api`): no delivery workers on this node.
    pub fn without_workers(mut self) -> Self {
        self.workers = None;
        self
    }

    /// Replaces the delivery settings (tests shorten polls and leases).
    pub fn with_pool_config(mut self, pool: PoolConfig) -> Self {
        self.workers = Some(pool);
        self
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
        let workers = self.workers.map(|pool| {
            let parts = PoolParts {
                store: self.state.store.clone(),
                master_key: self.state.master_key.clone(),
                destination: self.destination,
                limiter: Arc::new(AccountLimiter::new(self.rate_margin)),
                policy: self.retry,
                wake: self.state.delivery_wake.clone(),
                metrics: self.state.metrics.clone(),
            };
            tokio::spawn(pool::run(parts, pool, shutdown.clone()))
        });
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
        if let Some(workers) = workers {
            match workers.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "delivery workers failed"),
                Err(e) => tracing::error!(error = %e, "delivery workers panicked"),
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}
