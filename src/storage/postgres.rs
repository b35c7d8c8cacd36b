//! PostgreSQL implementation of `Store`.
