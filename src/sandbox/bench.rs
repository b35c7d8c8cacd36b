//! `handoff bench sandbox`: how many requests per second the sandbox sustains with its rate
//! limit off, on the mix Handoff's warm path sends (a contact sync, then a contactTag for the
//! synced contact), so benchmarks of Handoff can show the sandbox is never their bottleneck.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{AccountOptions, Sandbox, SandboxConfig};
use crate::loadgen::{self, LoadPlan, LoadReport};

/// Options of `handoff bench sandbox`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxBenchArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Total requests (each iteration is a contact sync followed by a contactTag).
    #[arg(long, default_value_t = 50_000)]
    pub requests: u64,
    /// Stop after this many seconds even if requests remain.
    #[arg(long = "duration", value_name = "SECS", default_value_t = 30)]
    pub duration_secs: u64,
}

impl Default for SandboxBenchArgs {
    fn default() -> Self {
        Self {
            connections: 64,
            requests: 50_000,
            duration_secs: 30,
        }
    }
}

/// Distinct contacts the mix syncs.
const EMAILS: u64 = 1_000;
/// Tags the mix attaches.
const TAGS: usize = 10;

/// Runs the benchmark and prints its report.
pub async fn bench(args: SandboxBenchArgs) -> anyhow::Result<()> {
    println!(
        "sandbox benchmark: {} connections, {} requests (≤ {} s), rate limit off, contact/sync + contactTags",
        args.connections, args.requests, args.duration_secs
    );
    let report = measure(&args).await?;
    println!("{report}");
    Ok(())
}

/// Starts an in-process sandbox, drives the mix against it and returns the report.
pub async fn measure(args: &SandboxBenchArgs) -> anyhow::Result<LoadReport> {
    let sandbox = Sandbox::start(SandboxConfig::unlimited())
        .await
        .context("starting the sandbox")?;
    let account = sandbox.create_account(AccountOptions::named("bench"));
    let tags: Vec<String> = (0..TAGS)
        .map(|n| {
            sandbox
                .seed_tag(&account.name, &format!("bench-tag-{n}"))
                .to_string()
        })
        .collect();
    let target = Arc::new(Target {
        sync: format!("{}/api/3/contact/sync", account.api_url),
        contact_tags: format!("{}/api/3/contactTags", account.api_url),
        token: account.token.clone(),
        tags,
    });

    let plan = LoadPlan::new(account.api_url.parse()?, args.connections)
        .requests(args.requests)
        .duration(Duration::from_secs(args.duration_secs));
    let report = loadgen::run_with_state(
        &plan,
        |worker| Worker {
            rng: 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1),
            contact: None,
        },
        move |ctx, mut worker| {
            let target = Arc::clone(&target);
            async move {
                let outcome = worker.step(&ctx.client, &target).await;
                (worker, outcome)
            }
        },
    )
    .await?;
    sandbox.shutdown().await;
    Ok(report)
}

/// Where the mix sends its requests.
struct Target {
    sync: String,
    contact_tags: String,
    token: String,
    tags: Vec<String>,
}

/// One connection's place in the mix.
struct Worker {
    /// xorshift64 state: the mix needs spread, not cryptographic randomness.
    rng: u64,
    /// The contact the last sync returned, to be tagged next.
    contact: Option<String>,
}

impl Worker {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A sync of a random email, or a contactTag for the contact the previous sync returned.
    async fn step(&mut self, client: &reqwest::Client, target: &Target) -> reqwest::Result<u16> {
        match self.contact.take() {
            None => {
                let email = format!("user{}@bench.example", self.next() % EMAILS);
                let response = client
                    .post(&target.sync)
                    .header("Api-Token", &target.token)
                    .json(&json!({ "contact": { "email": email, "firstName": "Bench" } }))
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let body: Value = response.json().await?;
                self.contact = body["contact"]["id"].as_str().map(str::to_string);
                Ok(status)
            }
            Some(contact) => {
                let tag = &target.tags[(self.next() % target.tags.len() as u64) as usize];
                let response = client
                    .post(&target.contact_tags)
                    .header("Api-Token", &target.token)
                    .json(&json!({ "contactTag": { "contact": contact, "tag": tag } }))
                    .send()
                    .await?;
                let status = response.status().as_u16();
                // Read the body so the connection goes back to the pool.
                response.bytes().await?;
                Ok(status)
            }
        }
    }
}
