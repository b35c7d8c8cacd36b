//! Handoff: multi-tenant event routing to ActiveCampaign, speaking the Meshes v1 API.
#![forbid(unsafe_code)]

pub mod domain;
pub mod loadgen;
pub mod rules;
pub mod sandbox;
pub mod storage;
