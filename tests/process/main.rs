//! Process-level tests: the real `handoff` binary spawned, killed, stopped and restarted, and several
//! nodes sharing one database.

mod crash;
mod load;
mod nodes;
mod shutdown;
mod support;
