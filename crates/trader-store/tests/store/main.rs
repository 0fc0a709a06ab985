//! trader-store's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod import;
mod runs;
mod store;
mod versions;
