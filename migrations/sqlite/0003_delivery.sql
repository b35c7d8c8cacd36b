-- The delivery engine: append-only attempt history, the worker nodes that share rate limits, and
-- the index that finds a connection's parked deliveries. Representation as in 0001 (BLOB uuids,
-- INTEGER microseconds, TEXT JSON, INTEGER 0/1 booleans, STRICT).

CREATE TABLE attempts (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    workspace_id    BLOB NOT NULL,
    event_id        BLOB NOT NULL,
    -- History goes with its delivery (and so with its event and workspace), never before.
    rule_event_id   BLOB NOT NULL REFERENCES rule_events (id) ON DELETE CASCADE,
    attempt_number  INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    outcome_code    TEXT NOT NULL CHECK (outcome_code IN
                        ('delivered', 'rejected_client_error', 'rejected_server_error',
                         'rate_limited', 'auth_failed', 'timeout', 'network_error',
                         'mapping_error', 'internal_error')),
    http_status     INTEGER,
    error           TEXT,
    -- JSON array of {method, path, status, duration_ms, response_excerpt}.
    calls           TEXT NOT NULL DEFAULT '[]',
    is_test         INTEGER NOT NULL DEFAULT 0 CHECK (is_test IN (0, 1))
) STRICT;
-- A delivery's history in order; also serves the cascade from rule_events.
CREATE INDEX attempts_rule_event ON attempts (rule_event_id, attempt_number);

-- Nodes running delivery workers: each account's rate limit is divided among the live ones.
CREATE TABLE worker_nodes (
    node_id      TEXT PRIMARY KEY,
    heartbeat_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Parked deliveries (the connection's key was rejected) wait here until the connection is fixed;
-- resuming them finds exactly these rows.
CREATE INDEX rule_events_parked ON rule_events (connection_id)
    WHERE status = 'retrying' AND next_attempt_at IS NULL;
