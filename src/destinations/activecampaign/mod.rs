//! ActiveCampaign (API v3): the client core, the account-level operations the management API needs
//! (credential check, live tags and lists), and the destination actions deliveries run
//! ([`actions`]: `add_tag`, `remove_tag`, `add_to_list`, `remove_from_list`, `sync_contact`).
//!
//! Layout: `client` (one recorded call), `classify` (what an answer means for an attempt), `contact`
//! (the contact read from a payload), `cache` (tag and list ids per account), `attempt` (one attempt's
//! calls and shared look-ups), `actions` (the actions themselves).

pub mod actions;
mod attempt;
pub mod cache;
pub mod classify;
pub mod client;
pub mod contact;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

pub use actions::{AcDestination, ActionResult, CallGate, NoGate};
pub use cache::AccountCache;
pub use client::{AcClient, AcResponse, CallFailure, CallRecord};

/// The integration type name.
pub const TYPE: &str = "activecampaign";

/// Why an account could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("ActiveCampaign rejected the API key")]
    Rejected,
    #[error("the account did not answer in time")]
    Timeout,
    #[error("the account could not be reached: {0}")]
    Unreachable(String),
    #[error("the destination address is not allowed")]
    NotAllowed,
    #[error("ActiveCampaign answered {status}: {message}")]
    Unexpected { status: u16, message: String },
}

fn account_error(result: Result<AcResponse, CallFailure>) -> Result<AcResponse, AccountError> {
    match result {
        Ok(r) if r.is_success() => Ok(r),
        Ok(r) if r.status == 401 || r.status == 403 => Err(AccountError::Rejected),
        Ok(r) => Err(AccountError::Unexpected {
            status: r.status,
            message: r
                .error_message()
                .unwrap_or_else(|| "no error message".into()),
        }),
        Err(CallFailure::Timeout) => Err(AccountError::Timeout),
        Err(CallFailure::NotAllowed) => Err(AccountError::NotAllowed),
        Err(CallFailure::Network(m)) => Err(AccountError::Unreachable(m)),
    }
}

/// Checks the key against the account with one cheap authenticated read.
pub async fn check_credentials(client: &AcClient) -> Result<(), AccountError> {
    let (_, result) = client.call(Method::GET, "/tags?limit=1", None).await;
    account_error(result).map(|_| ())
}

/// A tag or list as `GET /connections/{id}/actions` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NamedId {
    pub id: String,
    pub name: String,
}

/// At most this many pages of 100 are read per collection (bounded by the interactive timeout anyway).
const MAX_PAGES: usize = 20;

async fn collect(
    client: &AcClient,
    collection: &str,
    name_field: &str,
    keep: impl Fn(&Value) -> bool,
) -> Result<Vec<NamedId>, AccountError> {
    let mut out = Vec::new();
    for page in 0..MAX_PAGES {
        let path = format!("/{collection}?limit=100&offset={}", page * 100);
        let (_, result) = client.call(Method::GET, &path, None).await;
        let resp = account_error(result)?;
        let json = resp.json.unwrap_or(Value::Null);
        let items = json
            .get(collection)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let received = items.len();
        out.extend(items.iter().filter(|i| keep(i)).filter_map(|i| {
            Some(NamedId {
                id: id_string(i.get("id")?)?,
                name: i.get(name_field)?.as_str()?.to_owned(),
            })
        }));
        // meta.total is a string in ActiveCampaign's answers.
        let total = json
            .pointer("/meta/total")
            .and_then(|t| {
                t.as_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .or(t.as_u64().map(|n| n as usize))
            })
            .unwrap_or(0);
        if received < 100 || (page + 1) * 100 >= total {
            break;
        }
    }
    Ok(out)
}

/// Ids arrive as strings (sometimes numbers leak through).
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The account's contact tags and lists, for confirming which stand for each milestone.
pub async fn live_actions(client: &AcClient) -> Result<(Vec<NamedId>, Vec<NamedId>), AccountError> {
    let tags = collect(client, "tags", "tag", |t| {
        t.get("tagType")
            .and_then(Value::as_str)
            .is_none_or(|k| k == "contact")
    })
    .await?;
    let lists = collect(client, "lists", "name", |_| true).await?;
    Ok((tags, lists))
}
