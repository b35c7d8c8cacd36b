//! `handoff bench delivery`: end-to-end delivery latency and backlog burn-down (being built).

/// Options of `handoff bench delivery`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryBenchArgs {}

/// Runs the delivery benchmark.
pub async fn run(_args: DeliveryBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
