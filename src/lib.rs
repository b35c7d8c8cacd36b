//! Handoff: multi-tenant event routing to ActiveCampaign, speaking the Meshes v1 API.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod bench;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod destinations;
pub mod domain;
pub mod error;
pub mod http;
pub mod ingest;
pub mod loadgen;
pub mod metrics;
pub mod rules;
pub mod sandbox;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
