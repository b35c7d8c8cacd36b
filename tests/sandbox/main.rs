//! Integration tests of the ActiveCampaign sandbox, over real HTTP on port 0: one test per row of
//! the behaviour matrix (activecampaign-api.md §4), plus authentication, rate limiting, faults,
//! account isolation and the control API.

mod auth;
mod contact_tags;
mod contacts;
mod control;
mod faults;
mod helpers;
mod isolation;
mod lists;
mod rate_limit;
mod tags;
