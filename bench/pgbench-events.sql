-- The raw database ceiling for ingest: one INSERT transaction per event, the same row shape Handoff
-- writes for the onboarding example (see bench/pgbench-ingest.sh, which sets :org and :ws).
\set n random(1, 1000000000)
INSERT INTO events (id, organization_id, workspace_id, event, resource, resource_id, payload,
                    contact_email, created_by, created_at, status, total_rules, completed_count,
                    failed_count, completed_at)
VALUES (gen_random_uuid(), :org::uuid, :ws::uuid, 'page.completed', 'onboarding_sequence', 'workspace-setup',
        jsonb_build_object('user_id', 'usr_' || :n, 'email', 'user' || :n || '@northstar.io',
                           'page_id', 'page_connect-crm', 'page_title', 'Connect your CRM',
                           'sequence_step', 3, 'completed_at', '2026-03-21T15:06:00Z'),
        'user' || :n || '@northstar.io', 'publishable_key', now(), 'completed', 0, 0, 0, now());
