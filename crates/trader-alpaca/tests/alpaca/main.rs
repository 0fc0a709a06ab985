//! trader-alpaca's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod client;
mod common;
mod faults;
mod fixtures;
mod keys_in_logs;
mod props;
mod rate_limit;
