//! Process-level tests: the real `handoff` binary spawned, killed, stopped and restarted; several
//! nodes sharing one database; `handoff demo` end to end.

mod crash;
mod demo;
mod load;
mod nodes;
mod shutdown;
mod support;
