//! The public vocabulary of sandbox accounts: what to create one with, what a client needs to
//! reach it, its settings and changes to them, and why an operation failed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The token of the `demo` account the command line creates by default, fixed so a quick start
/// can be copied from the docs.
pub const DEMO_TOKEN: &str = "sandbox-demo-token";

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("no sandbox account named {0:?}")]
    UnknownAccount(String),
    #[error("a sandbox account named {0:?} already exists")]
    AccountExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// How an account answers a request over its rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum ThrottleStatus {
    /// `429 Too Many Requests`, as ActiveCampaign does today.
    #[default]
    TooManyRequests,
    /// `503 Service Unavailable`, as older accounts did.
    ServiceUnavailable,
}

impl ThrottleStatus {
    /// The HTTP status.
    pub fn code(self) -> u16 {
        match self {
            Self::TooManyRequests => 429,
            Self::ServiceUnavailable => 503,
        }
    }
}

impl TryFrom<u16> for ThrottleStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, String> {
        match code {
            429 => Ok(Self::TooManyRequests),
            503 => Ok(Self::ServiceUnavailable),
            other => Err(format!("throttle status must be 429 or 503, not {other}")),
        }
    }
}

impl From<ThrottleStatus> for u16 {
    fn from(t: ThrottleStatus) -> u16 {
        t.code()
    }
}

impl FromStr for ThrottleStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let code: u16 = s
            .trim()
            .parse()
            .map_err(|_| format!("not a status: {s:?}"))?;
        Self::try_from(code)
    }
}

impl fmt::Display for ThrottleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// What to create an account with; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountOptions {
    /// Path prefix of the account: `[A-Za-z0-9_-]`, 1–64 characters. Generated when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// API token. Random when absent.
    #[serde(default)]
    pub token: Option<String>,
    /// Accepted requests per sliding second; 0 = no limit. The sandbox default when absent.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// 429 or 503. The sandbox default when absent.
    #[serde(default)]
    pub throttle_status: Option<ThrottleStatus>,
    /// The token's user lacks the list and custom-field permissions: those endpoints answer 403
    /// with error family E.
    #[serde(default)]
    pub restricted: bool,
}

impl AccountOptions {
    /// Options for an account with this name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Uses this token instead of a random one.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Accepted requests per sliding second (0 = off).
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit_per_second = Some(per_second);
        self
    }

    /// Answers throttled requests with this status.
    pub fn throttle_status(mut self, status: ThrottleStatus) -> Self {
        self.throttle_status = Some(status);
        self
    }

    /// Makes list and custom-field endpoints answer 403 (error family E).
    pub fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }
}

/// What a client needs to reach an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub name: String,
    /// The `Api-Token` header value.
    pub token: String,
    /// The "API URL" of the account, as a Handoff connection stores it (`…/api/3` is appended by
    /// the client): `http://127.0.0.1:<port>/<name>`.
    pub api_url: String,
}

/// An account's settings as the control API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    pub name: String,
    pub token: String,
    pub api_url: String,
    pub rate_limit_per_second: u32,
    pub throttle_status: ThrottleStatus,
    pub restricted: bool,
}

/// A change to an account's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    /// A new token: the old one answers 403 from now on.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    #[serde(default)]
    pub throttle_status: Option<ThrottleStatus>,
    #[serde(default)]
    pub restricted: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_status_is_429_or_503() {
        assert_eq!("503".parse(), Ok(ThrottleStatus::ServiceUnavailable));
        assert!("500".parse::<ThrottleStatus>().is_err());
        assert_eq!(
            serde_json::to_string(&ThrottleStatus::TooManyRequests).unwrap(),
            "429"
        );
    }
}
