-- Foundation: tenants, keys, events, the delivery queue and idempotency records.
-- Every tenant table carries organization_id so every query can be scoped to the tenant.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE workspaces (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL,
    -- The name folded to lower case by the application (Unicode-aware, identical on both backends;
    -- PostgreSQL's lower() depends on the server's locale).
    name_key        text NOT NULL,
    description     text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- Target of the composite foreign keys below: a child row's organization must be its workspace's.
    CONSTRAINT workspaces_id_organization_key UNIQUE (id, organization_id)
);
CREATE UNIQUE INDEX workspaces_name_unique ON workspaces (organization_id, name_key);
CREATE INDEX workspaces_organization_newest ON workspaces (organization_id, id DESC);

CREATE TABLE machine_keys (
    access_key        text PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_ciphertext bytea NOT NULL,
    created_at        timestamptz NOT NULL,
    revoked_at        timestamptz
);
CREATE INDEX machine_keys_organization ON machine_keys (organization_id);

CREATE TABLE publishable_keys (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    public_key      text NOT NULL CONSTRAINT publishable_keys_public_key_unique UNIQUE,
    name            text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL,
    deactivated_at  timestamptz,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE
);
-- At most one active key per workspace.
CREATE UNIQUE INDEX publishable_keys_one_active ON publishable_keys (workspace_id) WHERE active;

CREATE TABLE events (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    workspace_id    uuid NOT NULL,
    event           text NOT NULL,
    resource        text NOT NULL,
    resource_id     text,
    -- Nullable: payloads may be purged after a retention period without breaking history.
    payload         jsonb,
    contact_email   text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN
                        ('pending', 'processing', 'retrying', 'completed', 'failed', 'canceled')),
    total_rules     integer NOT NULL DEFAULT 0,
    completed_count integer NOT NULL DEFAULT 0,
    failed_count    integer NOT NULL DEFAULT 0,
    started_at      timestamptz,
    completed_at    timestamptz,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE
);
-- Ids are time-ordered (v7): newest first is id DESC.
CREATE INDEX events_organization_newest ON events (organization_id, id DESC);
CREATE INDEX events_workspace_newest ON events (workspace_id, id DESC);
CREATE INDEX events_workspace_contact_email ON events (workspace_id, contact_email, id DESC)
    WHERE contact_email IS NOT NULL;

-- The delivery queue: one row per (event, matched rule). Rules and connections arrive in a later
-- migration, so rule_id and connection_id carry no foreign key yet.
CREATE TABLE rule_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    workspace_id     uuid NOT NULL,
    event_id         uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    rule_id          uuid NOT NULL,
    connection_id    uuid NOT NULL,
    integration_type text NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'processing', 'retrying', 'completed', 'failed', 'canceled')),
    attempt_count    integer NOT NULL DEFAULT 0,
    throttled_count  integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    lease_owner      text,
    started_at       timestamptz,
    completed_at     timestamptz,
    last_error       text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL
);
-- The claimable queue stays narrow: only rows that can still be claimed are indexed.
CREATE INDEX rule_events_due ON rule_events (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
-- Expired leases (a worker died) are found without scanning the queue.
CREATE INDEX rule_events_leased ON rule_events (lease_until) WHERE status = 'processing';
CREATE INDEX rule_events_event ON rule_events (event_id);

CREATE TABLE idempotency_keys (
    workspace_id    uuid NOT NULL,
    key             text NOT NULL,
    organization_id uuid NOT NULL,
    request_hash    text NOT NULL,
    -- Deferred: the key is claimed before its event is inserted, in the same transaction.
    event_id        uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
