//! Configuration: `config/default.toml` (compiled in) → an optional file → `HANDOFF__SECTION__KEY` env vars.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Everything Handoff reads at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub security: SecurityConfig,
    pub ingest: IngestConfig,
    pub log: LogConfig,
    pub destinations: DestinationsConfig,
    pub delivery: DeliveryConfig,
    pub retry: RetryConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub concurrency: usize,
    pub batch: usize,
    pub per_connection: i64,
    pub lease_seconds: u64,
    pub poll_interval_ms: u64,
    pub default_rate_limit: u32,
    pub rate_limit_margin_ms: u64,
    pub ops_bind: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub schedule_seconds: Vec<u64>,
    pub jitter: f64,
    pub max_retry_after_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationsConfig {
    pub allow_private_networks: bool,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub interactive_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub shutdown_grace_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub master_key: String,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("master_key", &"[redacted]")
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub rate_limit_per_second: u32,
    pub max_batch: usize,
    pub committers: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: String,
    pub level: String,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}: {msg}")]
    Env { name: String, msg: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads the layered configuration with an explicit environment (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value: toml::Table = DEFAULT_TOML.parse().map_err(|e| ConfigError::Parse {
            path: "config/default.toml".into(),
            source: Box::new(e),
        })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay: toml::Table = text.parse().map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                source: Box::new(e),
            })?;
            merge(&mut value, overlay);
        }
        let mut database_url = None;
        for (name, raw) in env {
            if name == "DATABASE_URL" {
                database_url = Some(raw);
                continue;
            }
            let Some(rest) = name.strip_prefix("HANDOFF__") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut value, &path, &raw).map_err(|msg| ConfigError::Env {
                name: name.clone(),
                msg,
            })?;
        }
        let mut config: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        if let Some(url) = database_url.filter(|u| !u.is_empty()) {
            config.database.url = url;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.ingest.max_batch == 0 || self.ingest.committers == 0 {
            return Err(ConfigError::Invalid(
                "ingest.max_batch and ingest.committers must be at least 1".into(),
            ));
        }
        if self.delivery.concurrency == 0
            || self.delivery.batch == 0
            || self.delivery.per_connection < 1
        {
            return Err(ConfigError::Invalid(
                "delivery.concurrency, delivery.batch and delivery.per_connection must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.retry.jitter) {
            return Err(ConfigError::Invalid(
                "retry.jitter must be in [0, 1)".into(),
            ));
        }
        let worst_attempt = self.destinations.timeout_ms.saturating_mul(4) / 1000;
        if self.delivery.lease_seconds <= worst_attempt {
            return Err(ConfigError::Invalid(format!(
                "delivery.lease_seconds ({}) must exceed 4 destination calls ({worst_attempt} s)",
                self.delivery.lease_seconds
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(
                "log.format must be \"text\" or \"json\"".into(),
            ));
        }
        Ok(())
    }

    /// The database URL to use: the configured one, or embedded SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.storage.data_dir.join("handoff.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// True when the database is the embedded SQLite.
    pub fn is_embedded(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }
}

/// Env values are parsed as TOML scalars when they look like one (`true`, `42`), else taken as strings.
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Boolean(_)
                | toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Array(_)),
            ) => v,
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            let Some(existing) = table.get(last) else {
                return Err(format!("unknown key `{last}`"));
            };
            // Keep the type the defaults declare: "8080" for a string key stays a string.
            let value = match existing {
                toml::Value::String(_) => toml::Value::String(raw.to_owned()),
                _ => env_value(raw),
            };
            table.insert(last.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => set_path(inner, rest, raw),
            _ => Err(format!("unknown section `{head}`")),
        },
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_point_at_embedded_sqlite() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert!(c.is_embedded());
        assert_eq!(c.database_url(), "sqlite://./data/handoff.db");
    }

    #[test]
    fn env_overrides_nested_keys_with_types() {
        let c = Config::load_from(
            None,
            env(&[
                ("HANDOFF__SERVER__BIND", "0.0.0.0:9000"),
                ("HANDOFF__INGEST__RATE_LIMIT_PER_SECOND", "7"),
                ("HANDOFF__RETRY__SCHEDULE_SECONDS", "[1, 2]"),
                ("DATABASE_URL", "postgres://x@y/z"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.ingest.rate_limit_per_second, 7);
        assert_eq!(c.retry.schedule_seconds, [1, 2]);
        assert_eq!(c.database_url(), "postgres://x@y/z");
        assert!(!c.is_embedded());
    }

    #[test]
    fn unknown_env_keys_are_rejected_by_name() {
        let err = Config::load_from(None, env(&[("HANDOFF__SERVER__BINDD", "x")])).unwrap_err();
        assert!(err.to_string().contains("HANDOFF__SERVER__BINDD"), "{err}");
    }

    #[test]
    fn a_file_overlays_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[log]\nformat = \"json\"\n").unwrap();
        let c = Config::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(c.log.format, "json");
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let err = Config::load_from(None, env(&[("HANDOFF__INGEST__MAX_BATCH", "lots")]));
        assert!(err.is_err());
    }
}
