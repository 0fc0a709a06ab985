//! trader-sim's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod common;
mod inputs;
mod orders;
mod sim;
