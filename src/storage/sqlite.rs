//! Embedded SQLite implementation of `Store`.
