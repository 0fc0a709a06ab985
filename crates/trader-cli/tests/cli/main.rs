//! trader-cli's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod backtest;
mod budget;
mod common;
mod compare_signals;
mod data;
mod ensemble;
mod gate;
mod governor_e2e;
mod reload_e2e;
mod repeat;
mod run;
mod shared_store;
mod sim;
mod train;
