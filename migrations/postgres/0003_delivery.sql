-- The delivery engine: append-only attempt history, the worker nodes that share rate limits, and
-- the index that finds a connection's parked deliveries.

CREATE TABLE attempts (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    event_id        uuid NOT NULL,
    -- History goes with its delivery (and so with its event and workspace), never before.
    rule_event_id   uuid NOT NULL REFERENCES rule_events (id) ON DELETE CASCADE,
    attempt_number  integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     bigint NOT NULL,
    outcome_code    text NOT NULL CHECK (outcome_code IN
                        ('delivered', 'rejected_client_error', 'rejected_server_error',
                         'rate_limited', 'auth_failed', 'timeout', 'network_error',
                         'mapping_error', 'internal_error')),
    http_status     integer,
    error           text,
    -- JSON array of {method, path, status, duration_ms, response_excerpt}.
    calls           jsonb NOT NULL DEFAULT '[]',
    is_test         boolean NOT NULL DEFAULT false
);
-- A delivery's history in order; also serves the cascade from rule_events.
CREATE INDEX attempts_rule_event ON attempts (rule_event_id, attempt_number);

-- Nodes running delivery workers: each account's rate limit is divided among the live ones.
CREATE TABLE worker_nodes (
    node_id      text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);

-- Parked deliveries (the connection's key was rejected) wait here until the connection is fixed;
-- resuming them finds exactly these rows.
CREATE INDEX rule_events_parked ON rule_events (connection_id)
    WHERE status = 'retrying' AND next_attempt_at IS NULL;
