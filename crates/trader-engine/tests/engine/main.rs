//! trader-engine's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod common;
mod faults;
mod live;
mod plan_props;
mod reload;
mod replay_matches_backtest;
mod resume_steps;
mod settle;
