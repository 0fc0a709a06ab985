//! One profile's session, from setup to summary, for the `trader` binary
//! and for tests in process: `trader run` (live against Alpaca or a
//! standalone simulator, or a replay through the embedded simulator),
//! `trader backtest` and `trader status`. The binary only parses flags,
//! handles signals and prints what these functions return.
