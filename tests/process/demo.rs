//! `handoff demo`: the real binary on ports 0 and a temporary data directory, driven as the README's
//! quick start drives it — read `demo.env`, send the onboarding event with the publishable key, and see
//! alex@northstar.io tagged and on the Onboarding list in the sandbox.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff::demo::{ENV_FILE, READY_LINE, try_commands};
use serde_json::Value;

use crate::load::eventually;
use crate::support::clean_env;

/// How long the demo gets to print its ready line (migrations, tenant, connection check, two rules).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A running `handoff demo`; SIGKILLed when dropped, so a failing test leaves nothing behind.
struct Demo {
    child: Child,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    exited: bool,
}

impl Demo {
    /// Starts `handoff demo` on ports 0 with `data_dir`, in `cwd`, and waits for its ready line.
    async fn start(cwd: &Path, data_dir: &Path) -> Demo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_handoff"));
        cmd.args(["demo", "--port", "0", "--sandbox-port", "0", "--data-dir"])
            .arg(data_dir)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        clean_env(&mut cmd);
        cmd.env("NO_COLOR", "1");
        let mut child = cmd.spawn().expect("spawn handoff demo");
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut demo = Demo {
            child,
            stdout: Vec::new(),
            stderr,
            exited: false,
        };
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    let ready = line == READY_LINE;
                    demo.stdout.push(line);
                    if ready {
                        return demo;
                    }
                }
                Ok(None) => panic!("handoff demo exited before it was ready: {}", demo.logs()),
                Err(_) => panic!(
                    "handoff demo not ready within {READY_DEADLINE:?}: {}",
                    demo.logs()
                ),
            }
        }
    }

    fn logs(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// SIGTERM by pid; `true` when it then exited with status 0 within `within`.
    async fn stop(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = true;
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- handoff demo ---\n{}", self.logs());
        }
    }
}

/// The `export NAME=value` lines of `demo.env`.
fn read_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).expect("demo.env is readable");
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .map(|assignment| {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            (name.to_owned(), value.trim_matches('\'').to_owned())
        })
        .collect()
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or_else(|| panic!("{url} has no port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tags_alex_and_adds_him_to_the_onboarding_list_as_the_quick_start_says() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let data_dir = tmp.path().join("demo");
    let mut demo = Demo::start(tmp.path(), &data_dir).await;

    let env_file = data_dir.join(ENV_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env_file)
            .expect("demo.env exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "demo.env holds a secret");
    }
    let env = read_env_file(&env_file);
    for name in [
        "HANDOFF",
        "SANDBOX",
        "KEY",
        "AUTH",
        "WORKSPACE_ID",
        "CONNECTION_ID",
    ] {
        assert!(
            env.get(name).is_some_and(|v| !v.is_empty()),
            "demo.env sets {name}: {env:?}"
        );
    }
    let (handoff, sandbox) = (&env["HANDOFF"], &env["SANDBOX"]);
    assert!(port_of(handoff) != 0 && port_of(sandbox) != 0);
    assert_ne!(port_of(handoff), port_of(sandbox));
    assert!(env["KEY"].starts_with("mesh_pub_"), "{}", env["KEY"]);
    assert!(env["AUTH"].starts_with("mk_") && env["AUTH"].contains(':'));

    // The output names the real bound ports and shows the quick start's commands line for line.
    let printed = demo.stdout.join("\n");
    assert!(printed.contains(handoff.as_str()), "{printed}");
    assert!(printed.contains(sandbox.as_str()), "{printed}");
    let commands = try_commands(&env_file);
    for command in &commands {
        assert!(
            demo.stdout.iter().any(|line| line == command),
            "not printed: {command}\n{printed}"
        );
    }
    assert!(commands[0].contains(&*data_dir.to_string_lossy()));
    // The normal service's data directory (./data of the demo's working directory) is not touched.
    assert!(!tmp.path().join("data").exists());

    // The onboarding event, exactly as the printed curl command sends it.
    let body = commands[1]
        .split_once("-d '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("the curl command carries a -d '…' body");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = http
        .post(format!("{handoff}/api/v1/events"))
        .header("Content-Type", "application/json")
        .header("X-Meshes-Publishable-Key", &env["KEY"])
        .body(body.to_owned())
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    let contact_url = format!("{sandbox}/__sandbox/accounts/demo/contacts/alex@northstar.io");
    let contact: Value = eventually(
        Duration::from_secs(15),
        "alex tagged and on the Onboarding list",
        || async {
            let resp = http.get(&contact_url).send().await.ok()?;
            if resp.status() != 200 {
                return None;
            }
            let c: Value = resp.json().await.ok()?;
            let tagged = c["tags"]
                .as_array()?
                .iter()
                .any(|t| t == "onboarding-step-3-done");
            let listed = c["lists"]
                .as_array()?
                .iter()
                .any(|l| l["list"] == "Onboarding" && l["status"] == 1);
            (tagged && listed).then_some(c)
        },
    )
    .await;
    assert_eq!(contact["first_name"], "Alex");

    assert!(
        demo.stop(Duration::from_secs(15)).await,
        "handoff demo exits 0 soon after SIGTERM: {}",
        demo.logs()
    );
}
