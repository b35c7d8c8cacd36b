-- Lets the database find an event's idempotency records cheaply: when a claimed key's event is
-- inserted (the deferred reference is checked per event) and on cascade.
CREATE INDEX idempotency_keys_event ON idempotency_keys (event_id);
