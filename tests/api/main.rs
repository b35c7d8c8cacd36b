//! HTTP API tests: the real app on port 0, a fresh database per test (SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set).

mod support;

mod auth;
mod bad_input;
mod bulk;
mod connections;
mod delivery;
mod history;
mod history_scope;
mod ingest;
mod metrics;
mod openapi;
mod rules;
mod workspaces;
