//! Storage conformance tests: every body runs against SQLite and, when `TEST_DATABASE_URL` names a
//! server, PostgreSQL (`backend_tests!`), so both backends keep one contract.

mod changes;
mod connect;
mod connections;
mod events;
mod idempotency;
mod rules;
mod support;
mod tenants;
mod workspaces;
