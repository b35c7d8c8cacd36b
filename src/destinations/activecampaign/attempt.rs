//! One delivery attempt's calls: the gate before every call, the call record kept for history, the
//! classification of every answer, and the lookups the actions share (contact by email, tag and list
//! ids by name through the account cache, creating missing tags).

use reqwest::Method;
use serde_json::{Value, json};

use super::cache::{AccountCache, Kind};
use super::classify::{Verdict, classify_answer, classify_failure};
use super::client::{AcClient, AcResponse, CallRecord};
use super::contact::ContactFields;
use super::id_string;
use crate::delivery::retry::Outcome;
use crate::domain::OutcomeCode;

use super::actions::CallGate;

/// A step of an attempt: a value, or why the attempt stops.
pub(super) type Step<T> = Result<T, Verdict>;

/// At most this many pages of 100 are read when looking a tag or list up by name.
const MAX_LOOKUP_PAGES: usize = 10;

/// A tag or list id and whether it came from the cache (a cached id may be stale).
#[derive(Clone, Debug)]
pub(super) struct Resolved {
    pub id: String,
    pub cached: bool,
}

/// Percent-encodes a query value or path segment.
pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Case-insensitive name equality, as ActiveCampaign's collation compares names.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// `meta.total`, which ActiveCampaign sends as a string.
fn total(json: &Value) -> usize {
    json.pointer("/meta/total")
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.trim().parse().ok())
                .or(t.as_u64().map(|n| n as usize))
        })
        .unwrap_or(0)
}

fn items<'a>(json: &'a Option<Value>, key: &str) -> &'a [Value] {
    json.as_ref()
        .and_then(|j| j.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// An answer that was 2xx but lacked what it must carry: the server misbehaved, so try again later.
fn malformed(what: &str) -> Verdict {
    Verdict::transient(
        OutcomeCode::RejectedServerError,
        format!("ActiveCampaign's answer carried no {what}"),
    )
}

/// Whether a failed `POST /tags` is worth a second look-up: a duplicate (another worker won the race)
/// or a server error / timeout (the create may have landed). Not after throttling, a rejected key, or
/// the gate saying stop: those end the attempt at once.
fn worth_looking_again(v: &Verdict) -> bool {
    matches!(
        v.outcome,
        Outcome::Permanent { .. } | Outcome::Transient { .. }
    ) && v.code != OutcomeCode::InternalError
}

/// The calls of one attempt against one account.
pub(super) struct Attempt<'a> {
    client: AcClient,
    gate: &'a dyn CallGate,
    cache: &'a AccountCache,
    /// The cache key: the account's `api_url`.
    account: String,
    pub calls: Vec<CallRecord>,
    /// The status of the last call (`None` when it got no answer or no call was made).
    pub last_status: Option<u16>,
}

impl<'a> Attempt<'a> {
    pub fn new(
        client: AcClient,
        gate: &'a dyn CallGate,
        cache: &'a AccountCache,
        account: String,
    ) -> Self {
        Self {
            client,
            gate,
            cache,
            account,
            calls: Vec::new(),
            last_status: None,
        }
    }

    /// Makes one call after the gate allows it and records it. Any HTTP answer is `Ok`; the gate
    /// saying stop, or no answer, ends the attempt.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Step<AcResponse> {
        if !self.gate.before_call().await {
            return Err(Verdict::transient(
                OutcomeCode::InternalError,
                "the attempt was stopped before calling ActiveCampaign",
            ));
        }
        let (record, result) = self.client.call(method, path, body).await;
        self.last_status = record.status;
        self.calls.push(record);
        result.map_err(|f| classify_failure(&f))
    }

    /// [`send`](Self::send), then anything but a 2xx ends the attempt.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Step<AcResponse> {
        let resp = self.send(method, path, body).await?;
        check(resp)
    }

    /// `POST /contact/sync` → the contact id.
    pub async fn sync(&mut self, contact: &ContactFields) -> Step<String> {
        let resp = self
            .call(Method::POST, "/contact/sync", Some(&contact.sync_body()))
            .await?;
        resp.json
            .as_ref()
            .and_then(|j| j.pointer("/contact/id"))
            .and_then(id_string)
            .ok_or_else(|| malformed("contact id"))
    }

    /// `GET /contacts?email=` → the id of the contact with exactly that email (any letter case), if any.
    /// The email is compared again because ActiveCampaign ignores filters it does not know, and a
    /// whole unfiltered page must not be mistaken for a match.
    pub async fn find_contact(&mut self, email: &str) -> Step<Option<String>> {
        let path = format!("/contacts?email={}", enc(email));
        let resp = self.call(Method::GET, &path, None).await?;
        Ok(items(&resp.json, "contacts")
            .iter()
            .find(|c| {
                c.get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .and_then(|c| c.get("id"))
            .and_then(id_string))
    }

    /// Pages through `path_for(offset)` for the first item whose `name_key` matches `name`.
    async fn find(
        &mut self,
        path_for: impl Fn(usize) -> String,
        collection: &str,
        name_key: &str,
        name: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Step<Option<String>> {
        for page in 0..MAX_LOOKUP_PAGES {
            let resp = self.call(Method::GET, &path_for(page * 100), None).await?;
            let page_items = items(&resp.json, collection);
            let found = page_items.iter().find(|i| {
                keep(i)
                    && i.get(name_key)
                        .and_then(Value::as_str)
                        .is_some_and(|n| same_name(n, name))
            });
            if let Some(id) = found.and_then(|i| i.get("id")).and_then(id_string) {
                return Ok(Some(id));
            }
            let total = resp.json.as_ref().map_or(0, total);
            if page_items.len() < 100 || (page + 1) * 100 >= total {
                break;
            }
        }
        Ok(None)
    }

    /// Looks a contact tag up by name on the account (no cache).
    async fn find_tag(&mut self, name: &str) -> Step<Option<String>> {
        let q = enc(name);
        let path_for = |offset: usize| match offset {
            0 => format!("/tags?search={q}&limit=100"),
            n => format!("/tags?search={q}&limit=100&offset={n}"),
        };
        // Template tags share the collection; only contact tags can be applied to contacts.
        let contact_tag = |t: &Value| {
            t.get("tagType")
                .and_then(Value::as_str)
                .is_none_or(|k| k == "contact")
        };
        self.find(path_for, "tags", "tag", name, contact_tag).await
    }

    /// The id of an existing contact tag: cache, else look-up (remembered). `None` when there is none.
    pub async fn existing_tag(&mut self, name: &str) -> Step<Option<Resolved>> {
        if let Some(id) = self.cache.get(&self.account, Kind::Tag, name) {
            return Ok(Some(Resolved { id, cached: true }));
        }
        let found = self.find_tag(name).await?;
        if let Some(id) = &found {
            self.cache.put(&self.account, Kind::Tag, name, id);
        }
        Ok(found.map(|id| Resolved { id, cached: false }))
    }

    /// The id of a contact tag, created when missing. If the create fails, the tag is looked up once
    /// more: another worker may have won the race (duplicate), or a timed-out create may have landed.
    pub async fn ensure_tag(&mut self, name: &str) -> Step<Resolved> {
        if let Some(found) = self.existing_tag(name).await? {
            return Ok(found);
        }
        let body = json!({"tag": {"tag": name, "tagType": "contact", "description": ""}});
        let failure = match self.call(Method::POST, "/tags", Some(&body)).await {
            Ok(resp) => match resp
                .json
                .as_ref()
                .and_then(|j| j.pointer("/tag/id"))
                .and_then(id_string)
            {
                Some(id) => {
                    self.cache.put(&self.account, Kind::Tag, name, &id);
                    return Ok(Resolved { id, cached: false });
                }
                None => malformed("tag id"),
            },
            Err(v) => v,
        };
        if !worth_looking_again(&failure) {
            return Err(failure);
        }
        match self.find_tag(name).await? {
            Some(id) => {
                self.cache.put(&self.account, Kind::Tag, name, &id);
                Ok(Resolved { id, cached: false })
            }
            None => Err(failure),
        }
    }

    /// The id of a list by name: cache, else `GET /lists?filters[name]=` (remembered). Lists are never
    /// created; `None` when the account has none of that name.
    pub async fn list(&mut self, name: &str) -> Step<Option<Resolved>> {
        if let Some(id) = self.cache.get(&self.account, Kind::List, name) {
            return Ok(Some(Resolved { id, cached: true }));
        }
        let q = enc(name);
        let path_for = |offset: usize| match offset {
            0 => format!("/lists?filters[name]={q}&limit=100"),
            n => format!("/lists?filters[name]={q}&limit=100&offset={n}"),
        };
        let found = self.find(path_for, "lists", "name", name, |_| true).await?;
        if let Some(id) = &found {
            self.cache.put(&self.account, Kind::List, name, id);
        }
        Ok(found.map(|id| Resolved { id, cached: false }))
    }

    /// Drops a cached id that turned out stale.
    pub fn forget(&self, kind: Kind, name: &str, id: &str) {
        self.cache.forget(&self.account, kind, name, id);
    }
}

/// Anything but a 2xx ends the attempt.
pub(super) fn check(resp: AcResponse) -> Step<AcResponse> {
    match classify_answer(&resp) {
        None => Ok(resp),
        Some(v) => Err(v),
    }
}

/// Whether an error answer's text mentions `needle` (case-insensitive), in its message or codes.
pub(super) fn mentions(resp: &AcResponse, needle: &str) -> bool {
    resp.json
        .as_ref()
        .is_some_and(|j| j.to_string().to_lowercase().contains(needle))
}
