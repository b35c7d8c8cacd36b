//! The `handoff` command: serve, migrate, admin, demo, sandbox, bench.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use handoff::config::Config;
use handoff::shutdown::Shutdown;
use handoff::{admin, app, telemetry};

#[derive(Parser)]
#[command(
    name = "handoff",
    version,
    about = "Event routing to ActiveCampaign, speaking the Meshes v1 API"
)]
struct Cli {
    /// A TOML file layered over config/default.toml.
    #[arg(long, global = true, env = "HANDOFF_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery workers (the default). On an empty database, first creates an
    /// organization and prints its keys.
    Serve,
    /// Run the HTTP API only (scale API and worker nodes separately).
    Api,
    /// Run the delivery workers only.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Try Handoff end to end: the service and an in-memory ActiveCampaign sandbox, wired for the
    /// onboarding example, with the commands to try. Its data directory (./data/demo) is deleted and
    /// recreated on every start.
    Demo(handoff::demo::DemoArgs),
    /// Emulators for trying Handoff without third-party accounts.
    Sandbox {
        #[command(subcommand)]
        which: SandboxCommand,
    },
    /// Load generators that print figures.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an organization with one workspace, a machine key and a publishable key, and print them.
    Init {
        /// Print one JSON object (organization_id, workspace_id, access_key, secret_key, publishable_key).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "Default organization")]
        organization: String,
        #[arg(long, default_value = "Default workspace")]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// The ActiveCampaign API v3 emulator.
    Activecampaign(handoff::sandbox::SandboxArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Single-event ingest throughput and latency against an in-process Handoff.
    Ingest(handoff::bench::IngestBenchArgs),
    /// Requests per second the ActiveCampaign sandbox sustains with its rate limit off.
    Sandbox(handoff::sandbox::SandboxBenchArgs),
    /// End-to-end delivery latency at a steady rate, and backlog burn-down throughput and memory.
    Delivery(handoff::bench::delivery::DeliveryBenchArgs),
    /// Delivery history reads and replays on a large history.
    History(handoff::bench::history::HistoryBenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let load = || -> anyhow::Result<Config> {
        let config = Config::load(cli.config.as_deref())?;
        telemetry::init(&config.log.format, &config.log.level);
        Ok(config)
    };
    match cli.command.unwrap_or(Command::Serve) {
        command @ (Command::Serve | Command::Api) => {
            let config = load()?;
            let store = app::open_store(&config).await?;
            let master = app::master_key(&config)?;
            if store.is_empty().await? {
                let creds = admin::init_tenant(
                    &*store,
                    &master,
                    "Default organization",
                    "Default workspace",
                )
                .await?;
                println!("{}", creds.to_text());
            }
            let mut application = app::Application::build(&config, store, master).await?;
            if matches!(command, Command::Api) {
                application = application.without_workers();
            }
            println!("Handoff listening on http://{}", application.local_addr());
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            application.run_until_stopped(shutdown).await
        }
        Command::Worker => {
            let config = load()?;
            let store = app::open_store(&config).await?;
            let master = app::master_key(&config)?;
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            app::run_workers(&config, store, master, shutdown).await
        }
        Command::Migrate => {
            let config = load()?;
            let store = app::open_store(&config).await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Init {
                    json,
                    organization,
                    workspace,
                },
        } => {
            let config = load()?;
            let store = app::open_store(&config).await?;
            let master = app::master_key(&config)?;
            let creds = admin::init_tenant(&*store, &master, &organization, &workspace).await?;
            if json {
                println!("{}", creds.to_json());
            } else {
                println!("{}", creds.to_text());
            }
            Ok(())
        }
        Command::Demo(args) => handoff::demo::run(load()?, args).await,
        Command::Sandbox {
            which: SandboxCommand::Activecampaign(args),
        } => {
            telemetry::init("text", "info");
            handoff::sandbox::run(args).await
        }
        Command::Bench {
            which: BenchCommand::Ingest(args),
        } => {
            telemetry::init("text", "warn");
            handoff::bench::ingest(args).await
        }
        Command::Bench {
            which: BenchCommand::Delivery(args),
        } => {
            telemetry::init("text", "error");
            handoff::bench::delivery::run(args).await
        }
        Command::Bench {
            which: BenchCommand::History(args),
        } => {
            telemetry::init("text", "error");
            handoff::bench::history::run(args).await
        }
        Command::Bench {
            which: BenchCommand::Sandbox(args),
        } => {
            telemetry::init("text", "warn");
            handoff::sandbox::bench(args).await
        }
    }
}
