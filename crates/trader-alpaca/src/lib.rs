//! The trader's connection to Alpaca (or to the simulator, which speaks the
//! same API): [`AlpacaClient`] implements the core traits
//! [`trader_core::MarketData`] and [`trader_core::Broker`] (the engine's
//! poller turns market data into closed hours, each handed over once).
//!
//! - Trading (account, positions, orders) goes through apca, whose trading
//!   base URL is configurable; market data through reqwest, because apca's
//!   data module reaches only Alpaca's host, one stock at a time, with
//!   integer volumes (crypto volume is fractional).
//! - One limiter (governor, default 180 requests/minute with a burst of 5)
//!   is shared by every request of the client and its clones; one timeout
//!   bounds every call; reads are retried on timeouts, dropped connections,
//!   5xx, 429 and malformed answers with jittered exponential backoff
//!   (backon) that waits at least until `X-RateLimit-Reset`.
//! - `POST /v2/orders` is never blindly retried: see [`trading`](crate::trading)
//!   for the protocol that looks the `client_order_id` up and adopts the
//!   order already there.
//! - Keys are sent as sensitive headers and kept in `trader_config::Secret`;
//!   they never reach logs, `Debug` output or errors.
//! - Symbol spelling (`BTC/USD` vs `BTCUSD`) is normalised in `symbols.rs`.
//!
//! Tests: `cargo test -p trader-alpaca` (the client against the simulator
//! over loopback, with and without injected faults; the recorded Alpaca
//! examples in `tests/fixtures/alpaca/`).

mod client;
pub mod data;
mod limiter;
mod symbols;
pub mod trading;

pub use client::{AlpacaClient, ClientError, ClientSettings, ClientStats};
pub use limiter::RequestLimiter;
