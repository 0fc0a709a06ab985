//! The trading engine: one decision per newly closed hour.
//!
//! For each closed hour handed over by the poll loop: store the bars, settle
//! the orders of earlier hours (re-send those that may not have reached the
//! broker, record fills), then, unless this run already decided the hour,
//! read the account and positions (fail closed: no reading, no trading),
//! build every member input's state vector (portfolio weights, then the
//! market features of the window), run the ensemble, turn the aggregate into
//! target weights (long-only, `max_weight` per symbol, sum at most
//! `max_gross`) and orders for the differences (skipped below
//! `min_trade_notional`), write the decision and its planned orders in one
//! transaction, and only then send the orders (sells first), each with a
//! `client_order_id` derived from (profile, bar time, symbol).
//!
//! The engine sees only the core traits ([`Broker`]) and the store; the
//! clock time of each step is given by the caller.
//!
//! Modules: `plan` (pure: target weights, order planning, order ids),
//! `engine` (setup, counts, what the engine holds), `hour` (one closed
//! hour), `decide` (the hour's decision: projected, prepared an hour ahead,
//! or whole; its split), `state` (the portfolio part of the state),
//! `orders` (send, settle, reconcile), `projection` (the batched
//! first layer of backtests), `poll` (closed hours from market data, each
//! once), `resume` (which hours a run decides), `live` (the poll loop, on an
//! injected clock, stopped by a [`Stop`]), `backtest` (the hour-by-hour loop
//! over recorded bars on a manual clock) and `report` (the metrics of a run
//! and its CSV files, for backtests and live comparisons).
//!
//! Tests: `cargo test -p trader-engine` (unit tests of the pure parts;
//! `tests/engine/live.rs` runs the live loop in process over the simulator's
//! paper broker, real model files and the in-memory recorder or a SQLite
//! store; `tests/engine/faults.rs` runs it through the real Alpaca client
//! against two simulators on loopback, one injecting every fault. Both on a
//! clock where every wait between polls passes at once: no wall-clock sleep
//! decides anything).

mod agreement;
mod backtest;
mod decide;
mod engine;
mod error;
mod hour;
mod live;
mod metrics;
mod orders;
mod plan;
mod poll;
mod projection;
mod reload;
mod report;
mod resume;
mod schedule;
mod state;
mod stop;

pub use agreement::{Agreement, Decisions, decision_agreement};
pub use backtest::{BacktestCurve, BacktestSpan, at_hours, common_hours, run_backtest};
pub use decide::DecisionSplit;
pub use engine::{Engine, EngineSetup, EngineStats, HourOutcome, load_ensemble, load_options};
pub use error::EngineError;
pub use live::{LiveOutcome, PollReport, STOP_GRACE, run_live};
pub use metrics::Metrics;
pub use plan::{PlannedTrade, client_order_id, order_id_prefix, plan_orders, target_weights};
pub use poll::{ClosedHour, Poller};
pub use reload::{
    LOOK_EVERY, RefusalCounts, RefusalReason, Reloader, SwapCheck, SwapRecord,
    selection_may_change, watch_selection,
};
pub use report::{Hourly, buy_and_hold, report_files};
pub use resume::{ResumePoint, TradeWindow, hours_to_trade};
pub use schedule::{PollSchedule, PollState, RETRY_FIRST};
pub use stop::{Stop, StopHandle, stop_pair};
