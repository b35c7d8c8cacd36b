//! The ActiveCampaign destination actions (activecampaign-api.md §7): `add_tag`, `remove_tag`,
//! `add_to_list`, `remove_from_list` and `sync_contact`, each run as one attempt that ends in an
//! [`Outcome`] for the retry policy, an [`OutcomeCode`] and the calls made, for delivery history.
//!
//! Everything that can be checked without the network (the contact's email, the tag or list name
//! template) is checked first, so a mapping error costs no call. Tag and list ids are cached per
//! account ([`AccountCache`]), making the warm path of `add_tag` two calls (sync, attach) and its cold
//! path four (sync, search, create, attach).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::attempt::{Attempt, Resolved, Step, check, enc, mentions};
use super::cache::{AccountCache, Kind};
use super::classify::Verdict;
use super::client::{AcClient, CallRecord};
use super::contact::ContactFields;
use super::id_string;
use crate::delivery::retry::Outcome;
use crate::domain::OutcomeCode;
use crate::rules::{Action, EventView, ResolvedTarget};

/// Awaited before every HTTP call to the account. The delivery engine plugs its per-account rate
/// limiter in here; `false` stops the attempt, which ends as a transient `internal_error`.
#[async_trait]
pub trait CallGate: Send + Sync {
    /// Waits until a call may be made; `false` means stop.
    async fn before_call(&self) -> bool;
}

/// A gate that always lets calls through (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGate;

#[async_trait]
impl CallGate for NoGate {
    async fn before_call(&self) -> bool {
        true
    }
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionResult {
    /// What the retry policy acts on.
    pub outcome: Outcome,
    /// What history shows.
    pub code: OutcomeCode,
    /// The last call's status (`None` when no call was made or the last one got no answer).
    pub http_status: Option<u16>,
    /// A short human message when not delivered (never the token, never the payload).
    pub error: Option<String>,
    /// Every call made, in order.
    pub calls: Vec<CallRecord>,
}

impl ActionResult {
    fn mapping(error: String) -> Self {
        Self {
            outcome: Outcome::Permanent {
                code: OutcomeCode::MappingError,
            },
            code: OutcomeCode::MappingError,
            http_status: None,
            error: Some(error),
            calls: Vec::new(),
        }
    }

    /// Whether the action took effect (or had nothing to do).
    pub fn is_delivered(&self) -> bool {
        self.outcome == Outcome::Delivered
    }
}

/// The ActiveCampaign destination: one per process, shared by every worker.
#[derive(Clone, Debug)]
pub struct AcDestination {
    http: reqwest::Client,
    cache: AccountCache,
    timeout: Duration,
    allow_private: bool,
}

/// The cache key of an account: its `api_url` without a trailing slash.
fn account_key(api_url: &Url) -> String {
    api_url.as_str().trim_end_matches('/').to_owned()
}

/// A cached list id the account no longer knows (`POST /contactLists` → 422 `list_not_exist`).
fn stale_list(resp: &super::client::AcResponse) -> bool {
    resp.status == 422 && mentions(resp, "list_not_exist")
}

/// A cached tag id the account no longer knows (`POST /contactTags` → 404 `Tag not found`).
fn stale_tag(resp: &super::client::AcResponse) -> bool {
    resp.status == 404 && mentions(resp, "tag not found")
}

fn list_not_found() -> Verdict {
    Verdict::permanent(
        OutcomeCode::RejectedClientError,
        "list not found in the ActiveCampaign account (lists are never created)",
    )
}

impl AcDestination {
    /// `http` should come from [`crate::destinations::net::http_client`]; `timeout` bounds each call.
    pub fn new(
        http: reqwest::Client,
        cache: AccountCache,
        timeout: Duration,
        allow_private: bool,
    ) -> Self {
        Self {
            http,
            cache,
            timeout,
            allow_private,
        }
    }

    /// The shared account cache.
    pub fn cache(&self) -> &AccountCache {
        &self.cache
    }

    /// Runs `action` for `event` on the account at `api_url`, awaiting `gate` before every call.
    pub async fn perform(
        &self,
        api_url: &Url,
        api_key: SecretString,
        action: &Action,
        event: &EventView<'_>,
        gate: &dyn CallGate,
    ) -> ActionResult {
        let contact = match ContactFields::from_payload(event.payload) {
            Ok(c) => c,
            Err(e) => return ActionResult::mapping(e.to_string()),
        };
        let target = match action.target().map(|t| t.resolve(event)).transpose() {
            Ok(t) => t,
            Err(e) => return ActionResult::mapping(e.to_string()),
        };
        let client = AcClient::new(
            self.http.clone(),
            api_url,
            api_key,
            self.timeout,
            self.allow_private,
        );
        let mut at = Attempt::new(client, gate, &self.cache, account_key(api_url));
        let step = match (action, target) {
            (Action::SyncContact, _) => at.sync(&contact).await.map(drop),
            (Action::AddTag(_), Some(t)) => add_tag(&mut at, &contact, t).await,
            (Action::RemoveTag(_), Some(t)) => remove_tag(&mut at, &contact, t).await,
            (Action::AddToList(_), Some(t)) => add_to_list(&mut at, &contact, t).await,
            (Action::RemoveFromList(_), Some(t)) => remove_from_list(&mut at, &contact, t).await,
            // `Action::target` is `Some` for every action but `sync_contact`.
            (_, None) => Err(Verdict::permanent(
                OutcomeCode::InternalError,
                "the action has no tag or list",
            )),
        };
        let result = match step {
            Ok(()) => ActionResult {
                outcome: Outcome::Delivered,
                code: OutcomeCode::Delivered,
                http_status: at.last_status,
                error: None,
                calls: at.calls,
            },
            Err(v) => ActionResult {
                outcome: v.outcome,
                code: v.code,
                http_status: at.last_status,
                error: Some(v.error),
                calls: at.calls,
            },
        };
        tracing::debug!(
            action = action.name(),
            outcome = result.code.as_str(),
            calls = result.calls.len(),
            "activecampaign action"
        );
        result
    }
}

/// sync → tag id (cache, search, create) → `POST /contactTags`. A cached tag id the account no
/// longer knows is dropped and resolved once more within the attempt.
async fn add_tag(
    at: &mut Attempt<'_>,
    contact: &ContactFields,
    target: ResolvedTarget,
) -> Step<()> {
    let cid = at.sync(contact).await?;
    let (name, tag) = match target {
        ResolvedTarget::Id(id) => (None, Resolved { id, cached: false }),
        ResolvedTarget::Name(n) => {
            let tag = at.ensure_tag(&n).await?;
            (Some(n), tag)
        }
    };
    let body = |tag: &str| json!({"contactTag": {"contact": cid, "tag": tag}});
    let resp = at
        .send(Method::POST, "/contactTags", Some(&body(&tag.id)))
        .await?;
    match name {
        Some(name) if tag.cached && stale_tag(&resp) => {
            at.forget(Kind::Tag, &name, &tag.id);
            let fresh = at.ensure_tag(&name).await?;
            at.call(Method::POST, "/contactTags", Some(&body(&fresh.id)))
                .await
                .map(drop)
        }
        _ => check(resp).map(drop),
    }
}

/// `GET /contacts?email=` → tag id (cache or search; never created) → the contact's associations →
/// `DELETE /contactTags/{id}`. No contact, no such tag, no association, or a 404 on the delete (gone
/// already) all mean there is nothing to remove: delivered.
async fn remove_tag(
    at: &mut Attempt<'_>,
    contact: &ContactFields,
    target: ResolvedTarget,
) -> Step<()> {
    let Some(cid) = at.find_contact(&contact.email).await? else {
        return Ok(());
    };
    let tag_id = match target {
        ResolvedTarget::Id(id) => id,
        ResolvedTarget::Name(n) => match at.existing_tag(&n).await? {
            Some(t) => t.id,
            None => return Ok(()),
        },
    };
    let path = format!("/contacts/{}/contactTags", enc(&cid));
    let resp = at.call(Method::GET, &path, None).await?;
    let assoc = resp
        .json
        .as_ref()
        .and_then(|j| j.get("contactTags"))
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter()
                .find(|a| a.get("tag").and_then(id_string).as_deref() == Some(tag_id.as_str()))
        })
        .and_then(|a| a.get("id"))
        .and_then(id_string);
    let Some(assoc) = assoc else {
        return Ok(());
    };
    let resp = at
        .send(
            Method::DELETE,
            &format!("/contactTags/{}", enc(&assoc)),
            None,
        )
        .await?;
    if resp.status == 404 {
        // Removed by someone else between the read and the delete.
        return Ok(());
    }
    check(resp).map(drop)
}

/// `POST /contactLists` with `status` for a resolved list; a cached list id the account no longer
/// knows is dropped and resolved once more.
async fn post_membership(
    at: &mut Attempt<'_>,
    cid: &str,
    name: Option<&str>,
    list: Resolved,
    status: u8,
) -> Step<()> {
    let body =
        |list: &str| json!({"contactList": {"list": list, "contact": cid, "status": status}});
    let resp = at
        .send(Method::POST, "/contactLists", Some(&body(&list.id)))
        .await?;
    match name {
        Some(name) if list.cached && stale_list(&resp) => {
            at.forget(Kind::List, name, &list.id);
            let fresh = at.list(name).await?.ok_or_else(list_not_found)?;
            at.call(Method::POST, "/contactLists", Some(&body(&fresh.id)))
                .await
                .map(drop)
        }
        _ => check(resp).map(drop),
    }
}

/// The list id for a target; a name the account does not know is a permanent client error, since
/// lists are never created (a typo in a rule should fail loudly, not pass silently).
async fn list_target(
    at: &mut Attempt<'_>,
    target: ResolvedTarget,
) -> Step<(Option<String>, Resolved)> {
    match target {
        ResolvedTarget::Id(id) => Ok((None, Resolved { id, cached: false })),
        ResolvedTarget::Name(n) => {
            let list = at.list(&n).await?.ok_or_else(list_not_found)?;
            Ok((Some(n), list))
        }
    }
}

/// sync → list id → `POST /contactLists` status 1 (subscribe, or re-subscribe).
async fn add_to_list(
    at: &mut Attempt<'_>,
    contact: &ContactFields,
    target: ResolvedTarget,
) -> Step<()> {
    let cid = at.sync(contact).await?;
    let (name, list) = list_target(at, target).await?;
    post_membership(at, &cid, name.as_deref(), list, 1).await
}

/// `GET /contacts?email=` (no contact: nothing to do) → list id → `POST /contactLists` status 2.
async fn remove_from_list(
    at: &mut Attempt<'_>,
    contact: &ContactFields,
    target: ResolvedTarget,
) -> Step<()> {
    let Some(cid) = at.find_contact(&contact.email).await? else {
        return Ok(());
    };
    let (name, list) = list_target(at, target).await?;
    post_membership(at, &cid, name.as_deref(), list, 2).await
}
