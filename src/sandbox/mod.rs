//! The ActiveCampaign sandbox: an in-memory emulator of the API v3 subset Handoff uses.

/// Command-line options of `handoff sandbox activecampaign`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9100)]
    pub port: u16,
}

/// Runs the sandbox until Ctrl-C / SIGTERM.
pub async fn run(_args: SandboxArgs) -> anyhow::Result<()> {
    anyhow::bail!("the sandbox is not built yet")
}
