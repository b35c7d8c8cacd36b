//! Reading `/proc` (Linux) for the burn-down's figures: a process's resident memory and CPU time,
//! the PostgreSQL server processes' CPU time, and the machine's busy time. Every reader returns
//! `None` (or skips a process) rather than failing: the figures are informative.

use std::collections::HashMap;

/// Kernel clock ticks per second for `/proc/*/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The one-minute load average (other work on the machine skews every figure).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User + system CPU ticks of a process, and its command name.
fn process_ticks(pid: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state …`: comm may hold spaces, so split at the last `)`.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the comm, field 3 (state) is index 0; utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU time of the processes that matter, at one instant.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    /// The worker process.
    pub worker: u64,
    /// This process (the sandbox, the poller).
    pub bench: u64,
    /// The PostgreSQL backends serving the bench's database, by pid (their process title names
    /// the database; backends come and go, and a new one counts from zero). Other databases on
    /// the server and its background processes are not counted.
    pub postgres: HashMap<String, u64>,
    /// The machine's busy and total ticks, all CPUs.
    pub busy: u64,
    pub total: u64,
}

impl CpuSnapshot {
    /// Reads everything now; `database` names the PostgreSQL database (empty: none).
    pub fn take(worker: u32, database: &str) -> Self {
        let mut snap = Self {
            worker: process_ticks(&worker.to_string()).map_or(0, |(_, t)| t),
            bench: process_ticks("self").map_or(0, |(_, t)| t),
            ..Self::default()
        };
        if let Ok(dir) = std::fs::read_dir("/proc")
            && !database.is_empty()
        {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((comm, ticks)) = process_ticks(&name)
                    && comm == "postgres"
                    && std::fs::read(format!("/proc/{name}/cmdline"))
                        .is_ok_and(|title| contains(&title, database.as_bytes()))
                {
                    snap.postgres.insert(name, ticks);
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = text.lines().find(|l| l.starts_with("cpu "))
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …; idle and iowait are not busy.
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            snap.busy = total - idle.min(total);
            snap.total = total;
        }
        snap
    }

    /// CPU seconds spent between `self` (earlier) and `later`.
    pub fn spent_until(&self, later: &CpuSnapshot) -> CpuSpent {
        let secs = |t: u64| t as f64 / TICKS_PER_SECOND;
        let postgres: u64 = later
            .postgres
            .iter()
            .map(|(pid, t)| t.saturating_sub(self.postgres.get(pid).copied().unwrap_or(0)))
            .sum();
        CpuSpent {
            worker: secs(later.worker.saturating_sub(self.worker)),
            bench: secs(later.bench.saturating_sub(self.bench)),
            postgres: secs(postgres),
            busy: secs(later.busy.saturating_sub(self.busy)),
            total: secs(later.total.saturating_sub(self.total)),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database name in a PostgreSQL URL (empty for anything else).
pub fn database_of(url: &str) -> String {
    if !url.starts_with("postgres") {
        return String::new();
    }
    url::Url::parse(url)
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

/// CPU seconds spent over a window.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub worker: f64,
    pub bench: f64,
    pub postgres: f64,
    /// The whole machine, busy.
    pub busy: f64,
    /// The whole machine, busy or idle (wall time × CPUs).
    pub total: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_set_and_cpu_time() {
        let pid = std::process::id();
        assert!(status_kb(pid, "VmRSS").is_some_and(|kb| kb > 0));
        assert!(status_kb(pid, "NoSuchField").is_none());
        let snap = CpuSnapshot::take(pid, "");
        assert!(snap.total > 0 && snap.busy <= snap.total);
        assert!(load_average().is_some_and(|l| l >= 0.0));
        assert_eq!(
            database_of("postgres://u@h:5432/handoff_test_1"),
            "handoff_test_1"
        );
        assert_eq!(database_of("sqlite:///tmp/x/handoff.db"), "");
    }
}
