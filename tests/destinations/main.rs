//! Integration tests of the ActiveCampaign destination actions against the in-process sandbox, over
//! real HTTP on 127.0.0.1: each action end to end (state read back through the sandbox handle), call
//! budgets from the request log, the tag-creation race, every fault's outcome, and history hygiene
//! (no token, bounded excerpts, mapping errors cost no call).

mod faults;
mod hygiene;
mod lists;
mod remove;
mod support;
mod tags;
