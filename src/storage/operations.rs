//! Backend-neutral parts of what support reads and does: the event list filter, the verdicts of a
//! manual retry and a cancel, replay's filter and limits, and Send Test Event's stored record.

use chrono::{DateTime, TimeDelta, Utc};

use uuid::Uuid;

use crate::domain::{
    AttemptRecord, ConnectionId, DeliveryStatus, NewEvent, OrganizationId, RuleId, WorkspaceId,
};
use crate::storage::{PageRequest, RuleEventRecord};

/// `created_by` of the event, rule event and attempt Send Test Event stores: how history marks a
/// test, and how replay leaves tests alone.
pub const TEST_CREATED_BY: &str = "send_test_event";

/// Most rule events one replay call requeues.
pub const REPLAY_MAX: i64 = 10_000;

/// A manual retry is refused while the next attempt is due sooner than this (it would race the
/// worker that is about to take it).
pub const RETRY_GUARD: TimeDelta = TimeDelta::seconds(5);

/// Equality filters on an event list; every one that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// One workspace; `None` lists the whole organization.
    pub workspace: Option<WorkspaceId>,
    pub event: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    /// `payload.email`, compared lower-cased (as stored).
    pub contact_email: Option<String>,
}

/// A value bound to the event list query, in placeholder order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Uuid(Uuid),
    Text(String),
    Int(i64),
}

/// The event list query (the same SQL on both backends, up to `placeholder`, which spells the
/// n-th parameter: `$n` or `?n`) with its binds. Only the filters that are set appear, so each
/// backend can walk the index that fits: a workspace's newest events, the organization's, or a
/// contact's events in a workspace. An organization-wide email search goes through the
/// organization's workspaces, so it walks the per-workspace email index too.
pub(crate) fn event_list_query(
    columns: &str,
    org: OrganizationId,
    filter: &EventFilter,
    page: PageRequest,
    placeholder: fn(usize) -> String,
) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Uuid(org.0)];
    // Scoped to the organization either way. For an email search across the organization the
    // scope is its workspaces alone: with `e.organization_id` in the query SQLite would walk the
    // organization's index newest first and filter every event, instead of the email index.
    let scope = if filter.workspace.is_none() && filter.contact_email.is_some() {
        "e.workspace_id IN (SELECT id FROM workspaces WHERE organization_id = "
    } else {
        "(e.organization_id = "
    };
    let mut sql = format!(
        "SELECT {columns} FROM events e WHERE {scope}{})",
        placeholder(1)
    );
    let mut condition = |sql: &mut String, column: &str, value: Bind| {
        binds.push(value);
        sql.push_str(&format!(" AND {column} {}", placeholder(binds.len())));
    };
    if let Some(w) = filter.workspace {
        condition(&mut sql, "e.workspace_id =", Bind::Uuid(w.0));
    }
    // The status is one of a closed set of words, spelled in the SQL rather than bound, so the
    // planner can prove a partial index on it applies (`events_*_failed`) on both backends.
    if let Some(status) = filter.status {
        sql.push_str(&format!(" AND e.status = '{}'", status.as_str()));
    }
    let texts = [
        ("e.event =", filter.event.clone()),
        ("e.resource =", filter.resource.clone()),
        ("e.resource_id =", filter.resource_id.clone()),
        ("e.contact_email =", filter.contact_email.clone()),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            condition(&mut sql, column, Bind::Text(v));
        }
    }
    if let Some(before) = page.before {
        condition(&mut sql, "e.id <", Bind::Uuid(before));
    }
    binds.push(Bind::Int(page.limit.max(0)));
    sql.push_str(&format!(
        " ORDER BY e.id DESC LIMIT {}",
        placeholder(binds.len())
    ));
    (sql, binds)
}

/// What a manual retry or cancel of one rule event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Manual {
    /// Applied (or, for a cancel of a canceled delivery, already so): the rule event as it is now.
    Done(Box<RuleEventRecord>),
    /// The organization has no such rule event on that event.
    NotFound,
    /// Refused: the delivery is final in this status (`completed`, or `canceled` for a retry).
    Final(DeliveryStatus),
    /// Refused: an attempt is running, or the next one is due within [`RETRY_GUARD`].
    TooEarly,
    /// Refused: Send Test Event's record is never run again by the queue (send another test).
    Test,
}

/// A named rule event's state, read (and on PostgreSQL locked) before a manual retry or cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub id: Uuid,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Send Test Event's record.
    pub is_test: bool,
}

/// Whether a retry may requeue a rule event in this state, and what status it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryVerdict {
    Requeue(&'static str),
    Final(DeliveryStatus),
    TooEarly,
}

/// The manual retry rule: completed and canceled deliveries are final; a running attempt (even one
/// whose lease ran out: a claim takes it now) or one due within the guard is too early; anything
/// else — failed, parked, or waiting for a later retry — is made due now. A failed delivery
/// becomes `retrying`; its retry budget is not reset, so a retried delivery that fails with a
/// transient error past its budget fails again rather than starting a two-day schedule.
pub(crate) fn retry_verdict(
    status: DeliveryStatus,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RetryVerdict {
    match status {
        DeliveryStatus::Completed | DeliveryStatus::Canceled => RetryVerdict::Final(status),
        DeliveryStatus::Processing => RetryVerdict::TooEarly,
        DeliveryStatus::Failed => RetryVerdict::Requeue("retrying"),
        DeliveryStatus::Pending | DeliveryStatus::Retrying => match next_attempt_at {
            Some(at) if at <= now + RETRY_GUARD => RetryVerdict::TooEarly,
            _ => RetryVerdict::Requeue(status.as_str()),
        },
    }
}

/// Whether a cancel changes a rule event in this status: everything not yet final is canceled; a
/// failed delivery is canceled too (so a replay of failures leaves it alone); a completed one is
/// refused; a canceled one stays as it is.
pub(crate) fn cancel_verdict(status: DeliveryStatus) -> Option<Result<(), DeliveryStatus>> {
    match status {
        DeliveryStatus::Completed => Some(Err(status)),
        DeliveryStatus::Canceled => None,
        _ => Some(Ok(())),
    }
}

/// Which rule events a replay requeues: those of one workspace in `status` created in
/// `[since, until)`, optionally of one connection or rule. Send Test Event's deliveries are never
/// replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayFilter {
    pub workspace: WorkspaceId,
    /// `failed`, `canceled` or `retrying` (the last makes waiting and parked retries due now).
    pub status: DeliveryStatus,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub connection: Option<ConnectionId>,
    pub rule: Option<RuleId>,
}

/// What a replay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Rule events requeued (at most the call's limit), oldest first.
    pub count: u64,
    /// More rule events match: call again.
    pub has_more: bool,
}

/// An extra, redundant condition for a replay of `status` that names the partial index
/// `rule_events_replayable` word for word, so both planners can use it.
pub(crate) fn replayable_term(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Failed | DeliveryStatus::Canceled => {
            " AND status IN ('failed', 'canceled')"
        }
        _ => "",
    }
}

/// The status a replayed rule event gets (`failed` and `canceled` start retrying again).
pub(crate) const REPLAY_STATUS: &str = "retrying";

/// Send Test Event's record: an event with exactly one rule event, stored already final with its
/// one attempt (`is_test`), never claimed by a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct TestDelivery {
    /// `created_by` is [`TEST_CREATED_BY`]; `rule_events` holds the one delivery.
    pub event: NewEvent,
    /// `completed` or `failed`.
    pub status: DeliveryStatus,
    pub attempt: AttemptRecord,
}

/// When a test delivery finished: its attempt's start plus its duration.
pub(crate) fn test_finished_at(attempt: &AttemptRecord) -> DateTime<Utc> {
    attempt.started_at + TimeDelta::milliseconds(attempt.duration_ms.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::now;

    #[test]
    fn the_event_list_names_only_the_filters_that_are_set() {
        let org = OrganizationId::new_v4();
        let page = PageRequest {
            limit: 51,
            before: None,
        };
        let dollar = |n: usize| format!("${n}");
        let (sql, binds) = event_list_query("e.id", org, &EventFilter::default(), page, dollar);
        assert_eq!(
            sql,
            "SELECT e.id FROM events e WHERE (e.organization_id = $1) ORDER BY e.id DESC LIMIT $2"
        );
        assert_eq!(binds, vec![Bind::Uuid(org.0), Bind::Int(51)]);

        let filter = EventFilter {
            contact_email: Some("alex@northstar.io".into()),
            status: Some(DeliveryStatus::Failed),
            ..EventFilter::default()
        };
        let before = Uuid::now_v7();
        let page = PageRequest {
            limit: 3,
            before: Some(before),
        };
        let (sql, binds) = event_list_query("e.id", org, &filter, page, |n| format!("?{n}"));
        assert_eq!(
            sql,
            "SELECT e.id FROM events e \
             WHERE e.workspace_id IN (SELECT id FROM workspaces WHERE organization_id = ?1) \
             AND e.status = 'failed' AND e.contact_email = ?2 AND e.id < ?3 ORDER BY e.id DESC LIMIT ?4"
        );
        assert_eq!(
            binds,
            vec![
                Bind::Uuid(org.0),
                Bind::Text("alex@northstar.io".into()),
                Bind::Uuid(before),
                Bind::Int(3)
            ]
        );
    }

    #[test]
    fn completed_and_canceled_deliveries_are_final_for_a_retry() {
        let t = now();
        for status in [DeliveryStatus::Completed, DeliveryStatus::Canceled] {
            assert_eq!(retry_verdict(status, None, t), RetryVerdict::Final(status));
        }
    }

    #[test]
    fn a_running_or_soon_due_delivery_is_too_early_to_retry() {
        let t = now();
        assert_eq!(
            retry_verdict(DeliveryStatus::Processing, None, t),
            RetryVerdict::TooEarly
        );
        for due in [t - TimeDelta::seconds(1), t, t + TimeDelta::seconds(5)] {
            assert_eq!(
                retry_verdict(DeliveryStatus::Retrying, Some(due), t),
                RetryVerdict::TooEarly,
                "{due}"
            );
            assert_eq!(
                retry_verdict(DeliveryStatus::Pending, Some(due), t),
                RetryVerdict::TooEarly
            );
        }
    }

    #[test]
    fn failed_parked_and_later_retries_are_requeued() {
        let t = now();
        assert_eq!(
            retry_verdict(DeliveryStatus::Failed, None, t),
            RetryVerdict::Requeue("retrying")
        );
        assert_eq!(
            retry_verdict(DeliveryStatus::Retrying, None, t),
            RetryVerdict::Requeue("retrying")
        );
        assert_eq!(
            retry_verdict(DeliveryStatus::Retrying, Some(t + TimeDelta::seconds(6)), t),
            RetryVerdict::Requeue("retrying")
        );
    }

    #[test]
    fn cancel_refuses_completed_keeps_canceled_and_stops_the_rest() {
        assert_eq!(
            cancel_verdict(DeliveryStatus::Completed),
            Some(Err(DeliveryStatus::Completed))
        );
        assert_eq!(cancel_verdict(DeliveryStatus::Canceled), None);
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Processing,
            DeliveryStatus::Retrying,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(cancel_verdict(status), Some(Ok(())), "{status:?}");
        }
    }
}
