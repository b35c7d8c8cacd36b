//! Rules: conditions, templates and matching. Pure code, no I/O.
