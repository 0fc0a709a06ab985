//! trader-session's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod common;
mod follow_sim;
mod session;
mod stale_sim;
