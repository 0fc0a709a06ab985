//! Domain types shared by every `trader` crate.
//!
//! What lives here: byte sizes parsed once ([`ByteSize`]), market symbols
//! ([`Symbol`]), numeric precision and compute device ([`DType`], [`ComputeDevice`]),
//! the feature catalog's names and window lengths ([`FeatureName`]), the compact
//! in-memory bar ([`Bar`]), and the resource-demand terms that each crate reports
//! to the budgeter ([`DemandTerm`]).
//!
//! What does not: I/O of any kind, configuration files, candle, SQL. This crate
//! depends on nothing of ours so that every other crate can depend on it.
//!
//! Tests: `cargo test -p trader-core`.

mod bar;
mod demand;
mod device;
mod feature;
mod size;
mod symbol;

pub use bar::{Bar, HISTORY_BYTES_PER_SYMBOL_HOUR};
pub use demand::DemandTerm;
pub use device::{Aggregate, ComputeDevice, DType, ParseChoiceError};
pub use feature::{FeatureName, UnknownFeature, required_history_hours};
pub use size::{ByteSize, SizeError};
pub use symbol::{Symbol, SymbolError};
