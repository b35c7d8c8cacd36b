//! Load generators.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestBenchArgs {}
pub async fn ingest(_a: IngestBenchArgs) -> anyhow::Result<()> {
    Ok(())
}
