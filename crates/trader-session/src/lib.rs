//! One profile's session, from setup to summary, for the `trader` binary
//! and for tests in process: `trader run` (live against Alpaca or a
//! standalone simulator, or a replay through the embedded simulator),
//! `trader backtest` and `trader status`. The binary only parses flags,
//! handles signals and prints what these functions return.
//!
//! - [`run`]: `trader run` after the budget gate ([`run::trade`] over a
//!   [`RunRequest`]), with the market connection in [`market`] (a broker's
//!   clock followed in [`follow`]), the run
//!   after its row exists in [`started`] and the end-of-run [`Summary`] in
//!   [`summary`];
//! - [`backtest`]: `trader backtest` ([`backtest::session`] over a
//!   [`BacktestRequest`]; [`backtest::backtest`] for one [`backtest::Plan`]),
//!   with the files of `--out` in [`out`];
//! - [`status`]: `trader status` ([`status::gather`] into a [`StatusView`]).
//!
//! Library code: no printing (the binary prints what these return), no
//! panics on bad input.

pub mod backtest;
pub mod follow;
pub mod market;
pub mod out;
pub mod run;
pub mod started;
pub mod status;
pub mod summary;
mod swap_check;

pub use backtest::{BacktestRequest, Output, Plan, load_bars};
pub use run::{RunRequest, RunSetup};
pub use status::{LiveView, StatusView, StoreProfileView};
pub use summary::{SplitMedians, Summary};
