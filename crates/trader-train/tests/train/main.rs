//! trader-train's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod governed;
mod search;
mod train;
