-- Connections (a destination account plus its sealed credentials) and rules (event → connection
-- action). rule_events deliberately keeps no foreign key to either: delivery history outlives a
-- deleted rule or connection. Representation as in 0001 (BLOB uuids, INTEGER microseconds,
-- TEXT JSON, INTEGER 0/1 booleans, STRICT).

CREATE TABLE connections (
    id                    BLOB PRIMARY KEY,
    organization_id       BLOB NOT NULL,
    workspace_id          BLOB NOT NULL,
    integration_type      TEXT NOT NULL,
    name                  TEXT NOT NULL,
    api_url               TEXT NOT NULL,
    -- nonce ‖ ciphertext ‖ tag under the master key; the clear key is never stored.
    api_key_ciphertext    BLOB NOT NULL,
    -- NULL means the integration's default.
    rate_limit_per_second INTEGER,
    hidden                INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    active                INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    inactive_reason       TEXT,
    created_by            TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE,
    -- Target of the rules' foreign key: a rule's connection must be in the rule's workspace.
    UNIQUE (id, workspace_id)
) STRICT;
-- Ids are time-ordered (v7): newest first is id DESC.
CREATE INDEX connections_organization_newest ON connections (organization_id, id DESC);
CREATE INDEX connections_workspace_newest ON connections (workspace_id, id DESC);

CREATE TABLE rules (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL,
    workspace_id     BLOB NOT NULL,
    connection_id    BLOB NOT NULL,
    integration_type TEXT NOT NULL,
    event            TEXT NOT NULL,
    resource         TEXT,
    resource_id      TEXT,
    metadata         TEXT NOT NULL,
    conditions       TEXT NOT NULL DEFAULT '[]',
    active           INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    hidden           INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE,
    -- No cascade: a connection that rules use is deleted only with its rules, on purpose
    -- (delete_connection with force). Deleting the workspace removes both in one statement.
    FOREIGN KEY (connection_id, workspace_id) REFERENCES connections (id, workspace_id)
) STRICT;
CREATE INDEX rules_organization_newest ON rules (organization_id, id DESC);
-- Serves listing a workspace's rules and loading all of them into the rule cache (which filters
-- active ones itself, so a partial index on active would only add write cost).
CREATE INDEX rules_workspace_newest ON rules (workspace_id, id DESC);
-- "Which rules use this connection?" (delete_connection) and the foreign key check on delete.
CREATE INDEX rules_connection ON rules (connection_id);
