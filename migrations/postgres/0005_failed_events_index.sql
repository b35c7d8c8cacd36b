-- Support lists failed events ("status=failed") newest first, in a workspace or the whole
-- organization. Failures are few and often old, so without these a page of them scans the history;
-- a partial index holds only the failed events and costs ingest nothing (new events are pending or
-- completed).
CREATE INDEX events_workspace_failed ON events (workspace_id, id DESC) WHERE status = 'failed';
CREATE INDEX events_organization_failed ON events (organization_id, id DESC) WHERE status = 'failed';
-- Replay picks a workspace's failed or canceled deliveries in a time window; these are few, so a
-- partial index keeps the pick (inside the write transaction) short.
CREATE INDEX rule_events_replayable ON rule_events (workspace_id, created_at)
    WHERE status IN ('failed', 'canceled');
