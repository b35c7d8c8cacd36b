//! Ingest: validating events, planning their deliveries and committing them in groups.

pub mod batcher;
pub mod ratelimit;
pub mod rule_cache;
pub mod validate;

pub use batcher::{Batcher, Committers, SubmitError};
pub use validate::{ValidEvent, validate_event};
