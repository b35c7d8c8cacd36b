//! Storage conformance tests: every body runs against SQLite and, when `TEST_DATABASE_URL` names a
//! server, PostgreSQL (`backend_tests!`), so both backends keep one contract.

mod changes;
mod claims;
mod connect;
mod connections;
mod events;
mod finish;
mod history;
mod idempotency;
mod operations;
mod rules;
mod support;
mod tenants;
mod workspaces;
