//! Starting the sandbox and driving it from Rust: [`Sandbox::start`] binds a listener (port 0 by
//! default) and serves every account plus the control API on it; the returned [`SandboxHandle`]
//! creates accounts, seeds records, injects faults, reads state and logs, resets and stops.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::middleware::from_fn_with_state;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::accounts::{Account, Defaults, Registry};
use super::conn::{Cut, CuttableListener};
use super::faults::Fault;
use super::options::{
    AccountInfo, AccountOptions, AccountSettings, AccountUpdate, SandboxError, ThrottleStatus,
};
use super::request_log::LoggedRequest;
use super::state::{AccountState, ListMembership};
use super::{control, gate, routes};

/// The path prefix of the control API; no ActiveCampaign account name can start with `__`.
pub const CONTROL_PREFIX: &str = "/__sandbox";

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; `127.0.0.1:0` (any free port) by default.
    pub bind: SocketAddr,
    /// Rate limit of accounts that do not set one (accepted requests per sliding second, 0 = off).
    pub rate_limit_per_second: u32,
    /// Throttle status of accounts that do not set one.
    pub throttle_status: ThrottleStatus,
    /// Accounts to create at start; a reset brings back exactly these (same names and tokens).
    pub accounts: Vec<AccountOptions>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            rate_limit_per_second: 5,
            throttle_status: ThrottleStatus::TooManyRequests,
            accounts: Vec::new(),
        }
    }
}

impl SandboxConfig {
    /// The default configuration with rate limiting off (benchmarks, tests not about limits).
    pub fn unlimited() -> Self {
        Self {
            rate_limit_per_second: 0,
            ..Self::default()
        }
    }
}

/// The ActiveCampaign sandbox.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Binds the listener and serves in a background task until [`SandboxHandle::shutdown`].
    /// Fails if the address cannot be bound or an initial account is invalid.
    pub async fn start(config: SandboxConfig) -> io::Result<SandboxHandle> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let registry = Arc::new(Registry::new(
            base_url(addr),
            Defaults {
                rate_limit_per_second: config.rate_limit_per_second,
                throttle_status: config.throttle_status,
            },
        ));
        registry
            .create_initial(config.accounts)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

        let app: Router = routes::router()
            .layer(from_fn_with_state(Arc::clone(&registry), gate::gate))
            .merge(control::router(Arc::clone(&registry)));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let server = axum::serve(
            CuttableListener(listener),
            app.into_make_service_with_connect_info::<Cut>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
        let task = tokio::spawn(async move { server.await });
        Ok(SandboxHandle {
            registry,
            addr,
            stop: Arc::new(Stop {
                tx: stop_tx,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// `http://<ip>:<port>`, with a loopback address in place of an unspecified one.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[derive(Debug)]
struct Stop {
    tx: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

/// A running sandbox. Cheap to clone; every clone drives the same sandbox.
///
/// The methods taking an account name are test conveniences and panic when the account does not
/// exist (or, for seeding, when the name is taken): a misspelled name in a test should fail loudly.
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    registry: Arc<Registry>,
    addr: SocketAddr,
    stop: Arc<Stop>,
}

impl SandboxHandle {
    /// The listener's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.registry.base_url().to_string()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control API's base URL, `http://127.0.0.1:<port>/__sandbox`.
    pub fn control_url(&self) -> String {
        format!("{}{CONTROL_PREFIX}", self.registry.base_url())
    }

    /// Creates an account.
    ///
    /// # Panics
    /// If the name is taken or invalid; see [`Self::try_create_account`].
    pub fn create_account(&self, options: AccountOptions) -> AccountInfo {
        self.try_create_account(options)
            .unwrap_or_else(|e| panic!("sandbox: {e}"))
    }

    /// Creates an account, or says why not.
    pub fn try_create_account(&self, options: AccountOptions) -> Result<AccountInfo, SandboxError> {
        self.registry.create(options)
    }

    /// Every account's settings.
    pub fn accounts(&self) -> Vec<AccountSettings> {
        self.registry.list()
    }

    /// One account's settings.
    pub fn account_settings(&self, account: &str) -> AccountSettings {
        self.account(account).settings()
    }

    /// Changes an account's token, rate limit, throttle status or permissions.
    pub fn update_account(&self, account: &str, update: AccountUpdate) -> AccountSettings {
        self.account(account)
            .update(update)
            .unwrap_or_else(|e| panic!("sandbox: {e}"))
    }

    /// Replaces the account's token: the old one gets 403 from now on.
    pub fn set_token(&self, account: &str, token: &str) {
        self.update_account(
            account,
            AccountUpdate {
                token: Some(token.to_string()),
                ..AccountUpdate::default()
            },
        );
    }

    /// Seeds a contact tag and returns its id.
    pub fn seed_tag(&self, account: &str, name: &str) -> u64 {
        self.account(account)
            .seed_tag(name, "contact", "")
            .unwrap_or_else(|e| panic!("sandbox: {e}"))
    }

    /// Seeds a list and returns its id.
    pub fn seed_list(&self, account: &str, name: &str) -> u64 {
        self.account(account).seed_list(name, None)
    }

    /// Seeds a text custom field and returns its id.
    pub fn seed_field(&self, account: &str, title: &str) -> u64 {
        self.account(account).seed_field(title, None, None)
    }

    /// Queues a fault for the account's next requests.
    pub fn inject_fault(&self, account: &str, fault: Fault) {
        self.account(account).push_fault(fault);
    }

    /// The account's pending faults.
    pub fn pending_faults(&self, account: &str) -> Vec<Fault> {
        self.account(account).pending_faults()
    }

    /// Drops the account's pending faults.
    pub fn clear_faults(&self, account: &str) {
        self.account(account).clear_faults();
    }

    /// The names of the tags of the contact with this email (any case); empty if none.
    pub fn contact_tags_by_email(&self, account: &str, email: &str) -> Vec<String> {
        let account = self.account(account);
        let data = account.data();
        data.contact_by_email(email)
            .map(|c| data.tag_names_of(c.id))
            .unwrap_or_default()
    }

    /// The list memberships of the contact with this email (any case); empty if none.
    pub fn list_memberships_by_email(&self, account: &str, email: &str) -> Vec<ListMembership> {
        let account = self.account(account);
        let data = account.data();
        data.contact_by_email(email)
            .map(|c| data.memberships_of(c.id))
            .unwrap_or_default()
    }

    /// Every contact with its tags and lists, and the account's tags, lists and fields.
    pub fn state(&self, account: &str) -> AccountState {
        self.account(account).data().snapshot()
    }

    /// The account's request log, ordered by time.
    pub fn request_log(&self, account: &str) -> Vec<LoggedRequest> {
        self.account(account).request_log()
    }

    /// Forgets the account's request log.
    pub fn clear_request_log(&self, account: &str) {
        self.account(account).clear_log();
    }

    /// Empties one account (records, faults, log, limiter history); its settings stay.
    pub fn reset_account(&self, account: &str) {
        self.account(account).reset();
    }

    /// Back to the state right after start: only the configured accounts, empty.
    pub fn reset(&self) {
        self.registry.reset();
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server
    /// task. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.stop.tx.send(true);
        let task = self
            .stop
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn account(&self, name: &str) -> Arc<Account> {
        self.registry
            .get(name)
            .unwrap_or_else(|e| panic!("sandbox: {e}"))
    }
}
