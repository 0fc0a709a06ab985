//! Domain types shared by every `trader` crate.
//!
//! What lives here: byte sizes parsed once ([`ByteSize`]), market symbols
//! ([`Symbol`]), numeric precision and compute device ([`DType`], [`ComputeDevice`]),
//! the feature catalog ([`FeatureName`], [`feature_value`], [`market_state`]:
//! pure functions over a window of bars), the compact in-memory bar and its
//! validation ([`Bar`]), the injected [`Clock`], the market traits the engine
//! trades through ([`MarketData`], [`Broker`]) with their order and position
//! types, where a store lives ([`StoreLocation`]: a SQLite file or a
//! PostgreSQL URL whose password never prints), and the resource-demand terms
//! that each crate reports to the budgeter ([`DemandTerm`]).
//!
//! What does not: I/O of any kind, configuration files, candle, SQL. This crate
//! depends on nothing of ours so that every other crate can depend on it.
//!
//! Tests: `cargo test -p trader-core`.

mod bar;
mod broker;
mod clock;
mod demand;
mod device;
mod feature;
mod features;
mod size;
mod stats;
mod store_location;
mod symbol;

pub use bar::{
    Bar, BarError, HISTORY_BYTES_PER_SYMBOL_HOUR, HOUR_SECS, RECORDED_CSV_HEADER, format_time,
};
pub use broker::{
    AccountState, BarsBySymbol, Broker, CRYPTO_FEE_BPS, ErrorKind, MarketData, MarketError, Order,
    OrderAmount, OrderRequest, OrderStatus, PAPER_STARTING_CASH, Placement, Position, Side,
    paper_equity,
};
pub use clock::{
    Clock, FollowedClock, MIN_SPEED_BASELINE, ManualClock, REAL_TIME_TOLERANCE, Reading,
    SystemClock,
};
pub use demand::DemandTerm;
pub use device::{Aggregate, ComputeDevice, DType, ParseChoiceError};
pub use feature::{FeatureName, UnknownFeature, required_history_hours};
pub use features::{
    SeriesFeatures, Unavailable, feature_value, feature_values, market_state, market_state_memo,
    newest_lag,
};
pub use size::{ByteSize, SizeError};
pub use stats::nearest_rank;
pub use store_location::{DatabaseUrl, StoreLocation, StoreLocationError};
pub use symbol::{Symbol, SymbolError};
