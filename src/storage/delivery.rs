//! Backend-neutral parts of the delivery queue: how wide a claim looks, what a disposition does to
//! a rule event, and the SQL that rolls an event up from its rule events (identical on both
//! backends: both support `FILTER` on aggregates).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::domain::{AttemptRecord, Disposition, RuleEventId};

/// How many candidates a claim locks per row it may return when a per-connection cap applies:
/// the cap discards some candidates, and the claim should still fill up unless one connection
/// holds (nearly) the whole window.
const CANDIDATES_PER_CLAIM: i64 = 4;

/// Candidates a claim of `limit` rows with `per_connection` cap looks at (per source: due rows and
/// expired leases each). Within the window, claims take connections in turn.
pub(crate) fn candidate_window(limit: i64, per_connection: i64) -> i64 {
    if per_connection >= limit {
        limit
    } else {
        limit.saturating_mul(CANDIDATES_PER_CLAIM)
    }
}

/// What finishing an attempt does to its rule event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    pub status: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Final statuses get `completed_at`.
    pub is_final: bool,
    /// Counts in `throttled_count`.
    pub throttled: bool,
    /// Keeps the attempt's error as `last_error` (everything but success).
    pub keeps_error: bool,
}

pub(crate) fn transition(disposition: &Disposition) -> Transition {
    let (status, next_attempt_at, is_final, throttled) = match *disposition {
        Disposition::Completed => ("completed", None, true, false),
        Disposition::RetryAt { at, throttled } => ("retrying", Some(at), false, throttled),
        Disposition::Failed => ("failed", None, true, false),
        // Retrying with no next attempt: nothing claims it until `resume_parked`.
        Disposition::Parked => ("retrying", None, false, false),
        Disposition::Canceled => ("canceled", None, true, false),
    };
    Transition {
        status,
        next_attempt_at,
        is_final,
        throttled,
        keeps_error: !matches!(disposition, Disposition::Completed),
    }
}

/// The last error a rule event keeps after `attempt` with `transition`.
pub(crate) fn last_error<'a>(
    attempt: &'a AttemptRecord,
    transition: &Transition,
) -> Option<&'a str> {
    if transition.keeps_error {
        attempt.error.as_deref()
    } else {
        None
    }
}

/// Which items of a batch apply their disposition: the first item of each rule event. A later
/// item for the same rule event would find the lease already cleared, so it is lost, exactly as
/// if the items were finished one after another.
pub(crate) fn first_per_rule_event<T>(items: &[(AttemptRecord, T)]) -> Vec<bool> {
    let mut seen: HashSet<RuleEventId> = HashSet::with_capacity(items.len());
    items
        .iter()
        .map(|(attempt, _)| seen.insert(attempt.rule_event_id))
        .collect()
}

/// Per-event counts of its rule events, by status: a subquery over `rule_events` aliased `s`
/// (`event_id, total, completed, failed, canceled, final, processing, retrying`). `{events}` is
/// replaced by the backend's "these event ids" condition on `event_id`.
pub(crate) const ROLLUP_COUNTS: &str = "SELECT event_id, count(*) AS total, \
         count(*) FILTER (WHERE status = 'completed') AS completed, \
         count(*) FILTER (WHERE status = 'failed') AS failed, \
         count(*) FILTER (WHERE status = 'canceled') AS canceled, \
         count(*) FILTER (WHERE status IN ('completed', 'failed', 'canceled')) AS final, \
         count(*) FILTER (WHERE status = 'processing') AS processing, \
         count(*) FILTER (WHERE status = 'retrying') AS retrying \
     FROM rule_events WHERE {events} GROUP BY event_id";

/// The event's status from the counts `s` (and the event row `e`: one whose deliveries were
/// never claimed is still `pending`, e.g. after one of them was canceled). Every rule event final with none failed but some
/// canceled reads `completed` when at least one was delivered (a deleted rule must not make a
/// delivered event look abandoned), `canceled` only when all were canceled.
pub(crate) const ROLLUP_STATUS: &str = "CASE \
         WHEN s.completed = s.total THEN 'completed' \
         WHEN s.final = s.total AND s.failed > 0 THEN 'failed' \
         WHEN s.canceled = s.total THEN 'canceled' \
         WHEN s.final = s.total THEN 'completed' \
         WHEN s.processing > 0 THEN 'processing' \
         WHEN s.retrying > 0 THEN 'retrying' \
         WHEN e.started_at IS NULL THEN 'pending' \
         ELSE 'processing' END";

/// Seconds from `oldest` to `now` (0 when there is nothing, or it lies in the future).
pub(crate) fn age_seconds(now: DateTime<Utc>, oldest: Option<DateTime<Utc>>) -> f64 {
    oldest
        .and_then(|at| (now - at).num_microseconds())
        .map_or(0.0, |micros| micros.max(0) as f64 / 1_000_000.0)
}

/// `columns` (a `, `-separated list) of table alias `alias`, each renamed `<prefix><column>`, for
/// joining a whole row of another table into a query's result.
pub(crate) fn prefixed(columns: &str, alias: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(str::trim)
        .map(|column| format!("{alias}.{column} AS {prefix}{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AttemptId, EventId, OrganizationId, OutcomeCode, WorkspaceId, now};

    fn attempt(rule_event: RuleEventId, error: Option<&str>) -> AttemptRecord {
        AttemptRecord {
            id: AttemptId::new_v7(),
            organization_id: OrganizationId::new_v4(),
            workspace_id: WorkspaceId::new_v7(),
            event_id: EventId::new_v7(),
            rule_event_id: rule_event,
            attempt_number: 1,
            started_at: now(),
            duration_ms: 5,
            outcome_code: OutcomeCode::Delivered,
            http_status: Some(200),
            error: error.map(Into::into),
            calls: Vec::new(),
            is_test: false,
        }
    }

    #[test]
    fn prefixed_columns_name_the_alias_and_the_prefix() {
        assert_eq!(
            prefixed("id, name,\n  created_at", "c", "c_"),
            "c.id AS c_id, c.name AS c_name, c.created_at AS c_created_at"
        );
    }

    #[test]
    fn the_window_widens_only_when_a_cap_can_discard_candidates() {
        assert_eq!(candidate_window(64, 64), 64);
        assert_eq!(candidate_window(64, 100), 64);
        assert_eq!(candidate_window(64, 8), 256);
        assert_eq!(candidate_window(i64::MAX, 1), i64::MAX);
    }

    #[test]
    fn each_disposition_maps_to_its_status_and_schedule() {
        let at = now();
        let cases = [
            (Disposition::Completed, "completed", None, true, false),
            (
                Disposition::RetryAt {
                    at,
                    throttled: true,
                },
                "retrying",
                Some(at),
                false,
                true,
            ),
            (
                Disposition::RetryAt {
                    at,
                    throttled: false,
                },
                "retrying",
                Some(at),
                false,
                false,
            ),
            (Disposition::Failed, "failed", None, true, false),
            (Disposition::Parked, "retrying", None, false, false),
            (Disposition::Canceled, "canceled", None, true, false),
        ];
        for (disposition, status, next, is_final, throttled) in cases {
            let t = transition(&disposition);
            assert_eq!(
                (t.status, t.next_attempt_at, t.is_final, t.throttled),
                (status, next, is_final, throttled),
                "{disposition:?}"
            );
        }
    }

    #[test]
    fn success_clears_the_last_error_and_everything_else_keeps_it() {
        let failed = attempt(RuleEventId::new_v7(), Some("HTTP 500"));
        assert_eq!(
            last_error(&failed, &transition(&Disposition::Completed)),
            None
        );
        assert_eq!(
            last_error(&failed, &transition(&Disposition::Parked)),
            Some("HTTP 500")
        );
    }

    #[test]
    fn only_the_first_item_of_a_rule_event_applies() {
        let (a, b) = (RuleEventId::new_v7(), RuleEventId::new_v7());
        let items = [
            (attempt(a, None), ()),
            (attempt(b, None), ()),
            (attempt(a, None), ()),
        ];
        assert_eq!(first_per_rule_event(&items), vec![true, true, false]);
    }
}
