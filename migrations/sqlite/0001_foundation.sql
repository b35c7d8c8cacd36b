-- Foundation: tenants, keys, events, the delivery queue and idempotency records.
-- Every tenant table carries organization_id so every query can be scoped to the tenant.
-- Representation: UUIDs are 16-byte BLOBs (memcmp order = v7 time order), timestamps are INTEGER
-- microseconds since the Unix epoch (integer order = time order, exact round trip), JSON is TEXT,
-- booleans are INTEGER 0/1. STRICT tables reject values of the wrong type.

CREATE TABLE organizations (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE workspaces (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    -- The name folded to lower case by the application (SQLite's lower() folds ASCII only).
    name_key        TEXT NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (id, organization_id)
) STRICT;
CREATE UNIQUE INDEX workspaces_name_unique ON workspaces (organization_id, name_key);
CREATE INDEX workspaces_organization_newest ON workspaces (organization_id, id DESC);

CREATE TABLE machine_keys (
    access_key        TEXT PRIMARY KEY,
    organization_id   BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_ciphertext BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    revoked_at        INTEGER
) STRICT;
CREATE INDEX machine_keys_organization ON machine_keys (organization_id);

CREATE TABLE publishable_keys (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    workspace_id    BLOB NOT NULL,
    public_key      TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at      INTEGER NOT NULL,
    deactivated_at  INTEGER,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE
) STRICT;
-- At most one active key per workspace.
CREATE UNIQUE INDEX publishable_keys_one_active ON publishable_keys (workspace_id) WHERE active = 1;

CREATE TABLE events (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    workspace_id    BLOB NOT NULL,
    event           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    resource_id     TEXT,
    -- Nullable: payloads may be purged after a retention period without breaking history.
    payload         TEXT,
    contact_email   TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                        ('pending', 'processing', 'retrying', 'completed', 'failed', 'canceled')),
    total_rules     INTEGER NOT NULL DEFAULT 0,
    completed_count INTEGER NOT NULL DEFAULT 0,
    failed_count    INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER,
    completed_at    INTEGER,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE
) STRICT;
-- Ids are time-ordered (v7): newest first is id DESC.
CREATE INDEX events_organization_newest ON events (organization_id, id DESC);
CREATE INDEX events_workspace_newest ON events (workspace_id, id DESC);
CREATE INDEX events_workspace_contact_email ON events (workspace_id, contact_email, id DESC)
    WHERE contact_email IS NOT NULL;

-- The delivery queue: one row per (event, matched rule). Rules and connections arrive in a later
-- migration, so rule_id and connection_id carry no foreign key yet.
CREATE TABLE rule_events (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL,
    workspace_id     BLOB NOT NULL,
    event_id         BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    rule_id          BLOB NOT NULL,
    connection_id    BLOB NOT NULL,
    integration_type TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'processing', 'retrying', 'completed', 'failed', 'canceled')),
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    throttled_count  INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    lease_owner      TEXT,
    started_at       INTEGER,
    completed_at     INTEGER,
    last_error       TEXT,
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL
) STRICT;
-- The claimable queue stays narrow: only rows that can still be claimed are indexed.
CREATE INDEX rule_events_due ON rule_events (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
-- Expired leases (a worker died) are found without scanning the queue.
CREATE INDEX rule_events_leased ON rule_events (lease_until) WHERE status = 'processing';
CREATE INDEX rule_events_event ON rule_events (event_id);

CREATE TABLE idempotency_keys (
    workspace_id    BLOB NOT NULL,
    key             TEXT NOT NULL,
    organization_id BLOB NOT NULL,
    request_hash    TEXT NOT NULL,
    -- Deferred: the key is claimed before its event is inserted, in the same transaction.
    event_id        BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
