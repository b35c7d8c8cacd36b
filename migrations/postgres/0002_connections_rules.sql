-- Connections (a destination account plus its sealed credentials) and rules (event → connection
-- action). rule_events deliberately keeps no foreign key to either: delivery history outlives a
-- deleted rule or connection.

CREATE TABLE connections (
    id                    uuid PRIMARY KEY,
    organization_id       uuid NOT NULL,
    workspace_id          uuid NOT NULL,
    integration_type      text NOT NULL,
    name                  text NOT NULL,
    api_url               text NOT NULL,
    -- nonce ‖ ciphertext ‖ tag under the master key; the clear key is never stored.
    api_key_ciphertext    bytea NOT NULL,
    -- NULL means the integration's default. bigint holds every u32.
    rate_limit_per_second bigint,
    hidden                boolean NOT NULL DEFAULT false,
    active                boolean NOT NULL DEFAULT true,
    inactive_reason       text,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT connections_workspace_fkey FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE,
    -- Target of the rules' foreign key: a rule's connection must be in the rule's workspace.
    CONSTRAINT connections_id_workspace_key UNIQUE (id, workspace_id)
);
-- Ids are time-ordered (v7): newest first is id DESC.
CREATE INDEX connections_organization_newest ON connections (organization_id, id DESC);
CREATE INDEX connections_workspace_newest ON connections (workspace_id, id DESC);

CREATE TABLE rules (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    workspace_id     uuid NOT NULL,
    connection_id    uuid NOT NULL,
    integration_type text NOT NULL,
    event            text NOT NULL,
    resource         text,
    resource_id      text,
    metadata         jsonb NOT NULL,
    conditions       jsonb NOT NULL DEFAULT '[]',
    active           boolean NOT NULL DEFAULT true,
    hidden           boolean NOT NULL DEFAULT false,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT rules_workspace_fkey FOREIGN KEY (workspace_id, organization_id)
        REFERENCES workspaces (id, organization_id) ON DELETE CASCADE,
    -- No cascade: a connection that rules use is deleted only with its rules, on purpose
    -- (delete_connection with force). Deleting the workspace removes both in one statement.
    CONSTRAINT rules_connection_fkey FOREIGN KEY (connection_id, workspace_id)
        REFERENCES connections (id, workspace_id)
);
CREATE INDEX rules_organization_newest ON rules (organization_id, id DESC);
-- Serves listing a workspace's rules and loading all of them into the rule cache (which filters
-- active ones itself, so a partial index on active would only add write cost).
CREATE INDEX rules_workspace_newest ON rules (workspace_id, id DESC);
-- "Which rules use this connection?" (delete_connection) and the foreign key check on delete.
CREATE INDEX rules_connection ON rules (connection_id);
