//! `handoff demo`: the whole service (API and delivery workers) on a fresh embedded SQLite database,
//! beside an in-process ActiveCampaign sandbox, wired for the onboarding example through the service's
//! own HTTP API, with a `demo.env` file and the commands to try printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::admin::{TenantCredentials, init_tenant};
use crate::app::{self, Application};
use crate::config::Config;
use crate::sandbox::{AccountOptions, AccountSettings, DEMO_TOKEN, Sandbox, SandboxConfig};
use crate::shutdown::Shutdown;

/// The sandbox account the demo creates.
pub const ACCOUNT: &str = "demo";
/// The sandbox list the second rule adds contacts to.
pub const LIST: &str = "Onboarding";
/// The event and resource both rules match.
pub const EVENT: &str = "page.completed";
pub const RESOURCE: &str = "onboarding_sequence";
/// The first rule's tag template.
pub const TAG_TEMPLATE: &str = "onboarding-step-{{payload.sequence_step}}-done";
/// Requests per second the demo account accepts, and its connection's limit. ActiveCampaign allows 5,
/// but the first delivery of a new tag and a list membership take six calls between them: at 5/s the
/// tag would show a second after the list, and the quick start's commands, pasted at once, would find
/// alex on the list but not yet tagged.
pub const RATE_LIMIT: u32 = 10;
/// The file, inside the data directory, holding the demo's URLs and keys as `export` lines.
pub const ENV_FILE: &str = "demo.env";
/// The last line printed once everything is wired (process tests wait for it).
pub const READY_LINE: &str = "Handoff demo ready. Ctrl-C to stop.";

/// Marks a directory as made by `handoff demo`: only such a directory is deleted on start.
const MARKER: &str = ".handoff-demo";

/// Command-line options of `handoff demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The demo's own data directory. DELETED AND RECREATED on every start (the sandbox lives in
    /// memory, so a kept connection would point at an account that no longer exists). The normal
    /// service's data directory is never touched; a directory not made by `handoff demo` is refused.
    #[arg(long, default_value = "./data/demo")]
    pub data_dir: PathBuf,
    /// Port of the Handoff HTTP API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the ActiveCampaign sandbox on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 9100)]
    pub sandbox_port: u16,
}

/// The commands to try, as the README's quick start shows them; `env_file` is where `demo.env` is.
pub fn try_commands(env_file: &Path) -> [String; 4] {
    let shown = env_file.strip_prefix(".").unwrap_or(env_file);
    [
        format!("source {}", shell_word(&shown.display().to_string())),
        r#"curl -s -X POST "$HANDOFF/api/v1/events" -H 'Content-Type: application/json' -H "X-Meshes-Publishable-Key: $KEY" -d '{"event":"page.completed","resource":"onboarding_sequence","resource_id":"workspace-setup","payload":{"email":"alex@northstar.io","first_name":"Alex","page_id":"page_connect-crm","sequence_step":3}}'"#.to_owned(),
        // Delivery runs right after the 201, in the background: a pasted block would otherwise
        // read the sandbox a millisecond too early.
        format!(r#"sleep 1; curl -s "$SANDBOX/__sandbox/accounts/{ACCOUNT}/contacts/alex@northstar.io""#),
        r#"curl -s -u "$AUTH" "$HANDOFF/api/v1/events?email=alex@northstar.io""#.to_owned(),
    ]
}

/// Runs the demo until Ctrl-C / SIGTERM. `config` is the loaded configuration; the demo overrides
/// where it listens, its database (always a fresh embedded SQLite in `--data-dir`, whatever
/// `DATABASE_URL` says), its master key (generated there) and, for this process only, allows private
/// networks, since the sandbox listens on loopback.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();

    // Bind both ports before deleting anything: a second demo on the same ports fails here.
    let sandbox = Sandbox::start(SandboxConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, args.sandbox_port)),
        accounts: vec![
            AccountOptions::named(ACCOUNT)
                .token(DEMO_TOKEN)
                .rate_limit(RATE_LIMIT),
        ],
        ..SandboxConfig::default()
    })
    .await
    .with_context(|| {
        format!(
            "starting the sandbox on 127.0.0.1:{} (choose another with --sandbox-port)",
            args.sandbox_port
        )
    })?;
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind} (choose another port with --port)"))?;

    recreate_data_dir(&args.data_dir, &config.storage.data_dir)?;
    config.server.bind = bind.to_string();
    config.storage.data_dir = args.data_dir.clone();
    config.database.url = String::new();
    config.security.master_key = String::new();
    config.destinations.allow_private_networks = true;

    let store = app::open_store(&config).await?;
    let master = app::master_key(&config)?;
    let creds = init_tenant(&*store, &master, "Demo organization", "Demo workspace").await?;
    let application = Application::build_on(listener, &config, store, master).await?;
    let handoff_url = format!("http://{}", application.local_addr());
    let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));

    let list_id = sandbox.seed_list(ACCOUNT, LIST);
    let env_file = args.data_dir.join(ENV_FILE);
    let setup = async {
        let connection_id = wire(
            &handoff_url,
            &creds,
            &sandbox.account_settings(ACCOUNT),
            list_id,
        )
        .await
        .context("wiring the demo through the Handoff API")?;
        write_env_file(
            &env_file,
            &[
                ("HANDOFF", handoff_url.clone()),
                ("SANDBOX", sandbox.url()),
                ("KEY", creds.publishable_key.clone()),
                (
                    "AUTH",
                    format!("{}:{}", creds.access_key, creds.secret_key.expose_secret()),
                ),
                ("WORKSPACE_ID", creds.workspace_id.to_string()),
                ("CONNECTION_ID", connection_id.clone()),
            ],
        )?;
        anyhow::Ok(connection_id)
    };
    match setup.await {
        Ok(connection_id) => println!(
            "{}",
            banner(
                &handoff_url,
                &sandbox.url(),
                &args.data_dir,
                &env_file,
                &connection_id,
                list_id
            )
        ),
        Err(e) => {
            // Stopped half-way: the service drains as on any stop; a Ctrl-C during set-up is no error.
            let interrupted = shutdown.is_triggered();
            shutdown.trigger();
            let _ = running.await;
            sandbox.shutdown().await;
            return if interrupted { Ok(()) } else { Err(e) };
        }
    }

    let served = running.await.context("the service task panicked")?;
    sandbox.shutdown().await;
    served
}

/// Creates the connection and the two rules by calling the service's own API, as a user would.
/// Returns the connection id.
async fn wire(
    base: &str,
    creds: &TenantCredentials,
    account: &AccountSettings,
    list_id: u64,
) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building an HTTP client")?;
    let workspace = creds.workspace_id.to_string();
    let post = |path: &'static str, body: Value| {
        let request = http
            .post(format!("{base}{path}"))
            .basic_auth(&creds.access_key, Some(creds.secret_key.expose_secret()))
            .json(&body);
        async move {
            let resp = request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status != reqwest::StatusCode::CREATED {
                bail!("POST {path} answered {status}: {text}");
            }
            serde_json::from_str::<Value>(&text).with_context(|| format!("POST {path}: {text}"))
        }
    };
    let created = post(
        "/api/v1/connections",
        json!({"workspace": workspace, "type": "activecampaign", "name": "Sandbox (demo)",
               "metadata": {"api_url": account.api_url, "api_key": account.token,
                            "rate_limit_per_second": RATE_LIMIT}}),
    )
    .await?;
    let connection = created["connection"]["id"]
        .as_str()
        .context("the created connection has no id")?
        .to_owned();
    for metadata in [
        json!({"action": "add_tag", "tag": TAG_TEMPLATE}),
        json!({"action": "add_to_list", "id": list_id.to_string()}),
    ] {
        post(
            "/api/v1/rules",
            json!({"workspace": workspace, "connection": connection, "event": EVENT,
                   "resource": RESOURCE, "metadata": metadata}),
        )
        .await?;
    }
    Ok(connection)
}

/// Deletes `dir` if `handoff demo` made it (or it is empty), then creates it afresh with the marker.
/// Refuses a directory that holds, or is, the normal service's data directory `service_dir`.
fn recreate_data_dir(dir: &Path, service_dir: &Path) -> anyhow::Result<()> {
    let holds_service = match (dir.canonicalize(), service_dir.canonicalize()) {
        (Ok(demo), Ok(service)) => service.starts_with(demo),
        // One of them does not exist: nothing of the service's can be inside the demo's.
        _ => false,
    };
    if holds_service {
        bail!(
            "--data-dir {} holds the service's own data directory {}; the demo deletes its data \
             directory on every start, so give it another one",
            dir.display(),
            service_dir.display()
        );
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty && !dir.join(MARKER).is_file() {
                bail!(
                    "{} exists and was not made by `handoff demo`; the demo deletes its data directory \
                     on every start, so it will not use this one (choose another --data-dir)",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("deleting the previous demo in {}", dir.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "Made by `handoff demo`, which deletes and recreates this directory on every start.\n",
    )
    .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    Ok(())
}

/// Writes `export NAME=value` lines, readable by the owner only (it holds the secret key).
fn write_env_file(path: &Path, vars: &[(&str, String)]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = String::from(
        "# Written by `handoff demo`, recreated on every start. It holds a secret key: keep it to yourself.\n",
    );
    for (name, value) in vars {
        text.push_str(&format!("export {name}={}\n", shell_word(value)));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// What the demo prints once it is ready: where things are, then the commands to try.
fn banner(
    handoff: &str,
    sandbox: &str,
    data_dir: &Path,
    env_file: &Path,
    connection: &str,
    list_id: u64,
) -> String {
    let commands = try_commands(env_file).join("\n");
    format!(
        "Handoff demo: the service and an ActiveCampaign sandbox, wired for the onboarding example.\n\
         \n  Handoff API  {handoff}  (embedded SQLite in {data}, deleted and recreated on every start)\
         \n  Sandbox      {sandbox}  (in memory: account {ACCOUNT}, list {LIST} with id {list_id}, {RATE_LIMIT} requests/s)\
         \n  Connection   {connection} to the sandbox account {ACCOUNT}\
         \n  Rules        {EVENT} on {RESOURCE}: add_tag {TAG_TEMPLATE}; add_to_list {LIST}\
         \n  URLs, keys   {env}  (mode 0600: it holds the secret key)\n\
         \nIn a second terminal, from this directory, try:\n\
         \n{commands}\n\
         \nThe first curl sends the event; a second later the next shows alex@northstar.io in the sandbox, \
         tagged onboarding-step-3-done and on the {LIST} list; the last shows the delivery in the history.\n\
         \n{READY_LINE}",
        data = data_dir.display(),
        env = env_file.display(),
    )
}

/// `s` as one shell word: as is when it needs no quoting, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_quick_start_shows_exactly_the_printed_commands() {
        let readme = include_str!("../README.md");
        for command in try_commands(&Path::new("./data/demo").join(ENV_FILE)) {
            assert!(
                readme.lines().any(|line| line == command),
                "README.md lacks the line {command:?}"
            );
        }
    }

    #[test]
    fn the_source_line_quotes_a_data_dir_that_needs_it() {
        let [source, ..] = try_commands(Path::new("/tmp/it's here/demo.env"));
        assert_eq!(source, r"source '/tmp/it'\''s here/demo.env'");
        let [source, ..] = try_commands(Path::new("/tmp/x/demo.env"));
        assert_eq!(source, "source /tmp/x/demo.env");
    }

    #[test]
    fn a_directory_not_made_by_the_demo_is_refused_and_kept() {
        let root = tempfile::tempdir().unwrap();
        let service = root.path().join("data");
        std::fs::create_dir_all(&service).unwrap();
        std::fs::write(service.join("handoff.db"), "precious").unwrap();
        let other = root.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();

        assert!(recreate_data_dir(&other, &service).is_err());
        assert!(other.join("notes.txt").exists());
        // The service's directory, or one above it, is refused even when it carries the marker.
        std::fs::write(service.join(MARKER), "").unwrap();
        assert!(recreate_data_dir(&service, &service).is_err());
        assert!(recreate_data_dir(root.path(), &service).is_err());
        assert!(service.join("handoff.db").exists());
    }

    #[test]
    fn a_previous_demo_directory_is_recreated_empty() {
        let root = tempfile::tempdir().unwrap();
        let service = root.path().join("data");
        let demo = service.join("demo");
        recreate_data_dir(&demo, &service).unwrap();
        std::fs::write(demo.join("handoff.db"), "old").unwrap();
        recreate_data_dir(&demo, &service).unwrap();
        assert!(!demo.join("handoff.db").exists());
        assert!(demo.join(MARKER).is_file());
    }

    #[cfg(unix)]
    #[test]
    fn the_env_file_is_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ENV_FILE);
        write_env_file(&path, &[("KEY", "mesh_pub_a_b_c".into())]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("export KEY=mesh_pub_a_b_c\n")
        );
    }
}
