//! Backend-neutral planning of an `insert_events` batch: which idempotency keys to claim, and how
//! the claims' results turn into per-event outcomes (including a key repeated inside one batch).

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::{DeliveryStatus, EventRecord, InsertOutcome, NewEvent};

/// One idempotency key to claim: the first event of the batch that carries it.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    /// Index of the claiming event in the batch.
    pub index: usize,
    pub workspace_id: Uuid,
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// What claiming a key found.
#[derive(Debug)]
pub(crate) enum ClaimResult {
    /// The key was free (or its record expired): the claiming event is stored.
    Won,
    /// A live record exists: the request hash it was made with, and its event.
    Existing {
        request_hash: String,
        event: Box<EventRecord>,
    },
}

/// The distinct keys a batch claims, sorted by (workspace, key) so that concurrent batches take
/// row locks in one order and cannot deadlock each other on these rows.
pub(crate) fn claims(batch: &[NewEvent]) -> Vec<Claim<'_>> {
    let mut seen = HashMap::new();
    let mut claims = Vec::new();
    for (index, event) in batch.iter().enumerate() {
        if let Some(claim) = &event.idempotency {
            let slot = (event.workspace_id.0, claim.key.as_str());
            if seen.insert(slot, index).is_none() {
                claims.push(Claim {
                    index,
                    workspace_id: event.workspace_id.0,
                    key: &claim.key,
                    request_hash: &claim.request_hash,
                });
            }
        }
    }
    claims.sort_by(|a, b| (a.workspace_id, a.key).cmp(&(b.workspace_id, b.key)));
    claims
}

/// The record an event has right after it is inserted.
pub(crate) fn inserted_record(event: &NewEvent) -> EventRecord {
    let terminal = matches!(
        event.status,
        DeliveryStatus::Completed | DeliveryStatus::Failed | DeliveryStatus::Canceled
    );
    EventRecord {
        id: event.id,
        organization_id: event.organization_id,
        workspace_id: event.workspace_id,
        event: event.event.clone(),
        resource: event.resource.clone(),
        resource_id: event.resource_id.clone(),
        created_by: event.created_by.clone(),
        created_at: event.created_at,
        status: event.status,
        total_rules: event.rule_events.len() as i64,
        completed_count: 0,
        failed_count: 0,
        started_at: None,
        // An event that is already final when accepted (no rule matched) completed when it arrived.
        completed_at: terminal.then_some(event.created_at),
    }
}

/// The outcome of every event, in input order, and the indices of the events to store.
pub(crate) struct Resolution {
    pub outcomes: Vec<InsertOutcome>,
    pub to_insert: Vec<usize>,
}

/// Combines the claims' results (`results[i]` answers `claims[i]`) into outcomes. An event whose
/// key an earlier event of the same batch holds is answered against that holder, as if it came in
/// a later request.
pub(crate) fn resolve(
    batch: &[NewEvent],
    claims: &[Claim<'_>],
    results: Vec<ClaimResult>,
) -> Resolution {
    // (workspace, key) → (hash, record) of whoever holds the key after the claims.
    let mut holders: HashMap<(Uuid, &str), (String, EventRecord)> = HashMap::new();
    let mut won = vec![false; batch.len()];
    for (claim, result) in claims.iter().zip(results) {
        let holder = match result {
            ClaimResult::Won => {
                won[claim.index] = true;
                (
                    claim.request_hash.to_owned(),
                    inserted_record(&batch[claim.index]),
                )
            }
            ClaimResult::Existing {
                request_hash,
                event,
            } => (request_hash, *event),
        };
        holders.insert((claim.workspace_id, claim.key), holder);
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut to_insert = Vec::with_capacity(batch.len());
    for (index, event) in batch.iter().enumerate() {
        let Some(claim) = &event.idempotency else {
            to_insert.push(index);
            outcomes.push(InsertOutcome::Inserted(inserted_record(event)));
            continue;
        };
        if won[index] {
            to_insert.push(index);
            outcomes.push(InsertOutcome::Inserted(inserted_record(event)));
            continue;
        }
        let (hash, record) = holders
            .get(&(event.workspace_id.0, claim.key.as_str()))
            .expect("every idempotency key of the batch was claimed");
        outcomes.push(if *hash == claim.request_hash {
            InsertOutcome::Replayed(record.clone())
        } else {
            InsertOutcome::IdempotencyConflict
        });
    }
    Resolution {
        outcomes,
        to_insert,
    }
}
