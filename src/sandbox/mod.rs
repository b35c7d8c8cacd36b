//! The ActiveCampaign sandbox: an in-memory emulator of the API v3 subset Handoff uses
//! (activecampaign-api.md), with several accounts, per-account tokens and sliding-window rate
//! limits, injectable faults and a control API. See `docs/SANDBOX.md`.
//!
//! Layout: `server` (start, handle); `accounts` and `options` (registry, per-account state,
//! settings); `gate` (per request: fault → auth → limit → log); `routes/` (one file per
//! resource); `records` and `data` (records and the rules that change them); `state` (read-only
//! views); `render` (wire shapes); `errors` (error families); `rate_limit`; `faults`;
//! `request_log`; `conn` (cuttable connections); `control` (control API); `bench`.

mod accounts;
mod bench;
mod conn;
mod control;
mod data;
mod errors;
mod faults;
mod gate;
mod options;
mod rate_limit;
mod records;
mod render;
mod request_log;
mod routes;
mod server;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;

pub use bench::{SandboxBenchArgs, bench, measure};
pub use faults::{Fault, FaultBody, FaultKind};
pub use options::{
    AccountInfo, AccountOptions, AccountSettings, AccountUpdate, DEMO_TOKEN, SandboxError,
    ThrottleStatus,
};
pub use request_log::LoggedRequest;
pub use server::{CONTROL_PREFIX, Sandbox, SandboxConfig, SandboxHandle};
pub use state::{AccountState, ContactState, FieldState, ListMembership, ListState, TagState};

/// Command-line options of `handoff sandbox activecampaign`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 9100)]
    pub port: u16,
    /// Accepted requests per sliding second, per account (0 = no limit).
    #[arg(long, default_value_t = 5)]
    pub rate_limit: u32,
    /// Status of throttled requests: 429, or 503 as older accounts answered.
    #[arg(long, default_value_t = ThrottleStatus::TooManyRequests)]
    pub throttle_status: ThrottleStatus,
    /// Account to create at start (repeatable). `demo` gets the fixed token `sandbox-demo-token`,
    /// the others a random one.
    #[arg(long = "account", value_name = "NAME", default_value = "demo")]
    pub accounts: Vec<String>,
}

/// Runs the sandbox until Ctrl-C / SIGTERM.
pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let accounts = args
        .accounts
        .iter()
        .map(|name| {
            let options = AccountOptions::named(name.clone());
            if name == "demo" {
                options.token(DEMO_TOKEN)
            } else {
                options
            }
        })
        .collect();
    let config = SandboxConfig {
        bind: SocketAddr::new(args.bind, args.port),
        rate_limit_per_second: args.rate_limit,
        throttle_status: args.throttle_status,
        accounts,
    };
    let sandbox = Sandbox::start(config)
        .await
        .with_context(|| format!("starting the sandbox on {}:{}", args.bind, args.port))?;

    println!("ActiveCampaign sandbox listening on {}", sandbox.url());
    println!(
        "  control API: {}  (see docs/SANDBOX.md)",
        sandbox.control_url()
    );
    match args.rate_limit {
        0 => println!("  rate limit:  off"),
        n => println!(
            "  rate limit:  {n} requests per second per account, then {}",
            args.throttle_status
        ),
    }
    for account in sandbox.accounts() {
        println!("  account {}", account.name);
        println!("    api_url: {}", account.api_url);
        println!("    token:   {}", account.token);
    }
    println!("Ctrl-C to stop.");

    stop_signal().await;
    println!("stopping");
    sandbox.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
