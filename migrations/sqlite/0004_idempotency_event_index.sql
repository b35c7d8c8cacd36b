-- Lets the database find an event's idempotency records cheaply: when a claimed key's event is
-- inserted (without it SQLite scans the table per event to check the deferred reference) and on cascade.
CREATE INDEX idempotency_keys_event ON idempotency_keys (event_id);
