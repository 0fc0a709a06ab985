//! The search's settings (the caller's choices, else the profile's) and
//! the recorded bars it trains and validates on.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use trader_config::{ConfigError, Profile};
use trader_core::{Bar, Symbol};
use trader_recorded::RecordedError;

use crate::SearchSpace;

/// What a search trains for: the profile (its `[trading]` settings trade the
/// validation backtest), the symbols and the hyperparameter space.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub profile: Profile,
    pub symbols: Vec<Symbol>,
    pub space: SearchSpace,
}

impl SearchSettings {
    /// Loads `profile` (a name in `config_dir` or a TOML path) and fills
    /// what the caller left open from it: `symbols` default to the
    /// profile's, `max_history_hours` to its `history_hours`.
    ///
    /// # Errors
    /// The profile does not load.
    pub fn resolve(
        profile: &str,
        config_dir: &Path,
        symbols: Option<&[Symbol]>,
        max_history_hours: Option<u32>,
        max_epochs: u32,
    ) -> Result<Self, ConfigError> {
        let profile = Profile::load(profile, config_dir)?;
        Ok(SearchSettings {
            symbols: symbols.map_or_else(|| profile.symbols.clone(), <[Symbol]>::to_vec),
            space: SearchSpace {
                max_history_hours: max_history_hours.unwrap_or(profile.history_hours),
                max_epochs,
            },
            profile,
        })
    }
}

/// The symbols' bars at the hours every symbol has, and those hours.
#[derive(Debug, Clone)]
pub struct TrainingBars {
    /// Per symbol, oldest first, at `hours` only.
    pub bars: BTreeMap<Symbol, Vec<Bar>>,
    /// Hours with a bar of every symbol, ascending.
    pub hours: Vec<i64>,
}

/// How many common hours each span of a search has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRows {
    /// Hours up to and including `train_until`.
    pub train: usize,
    /// Hours in `(train_until, valid_until]`.
    pub valid: usize,
}

impl TrainingBars {
    /// Reads `symbols` from the recorded set in `dir` (bars not closed at
    /// `now` refused, as the one loader does) and keeps the common hours.
    ///
    /// # Errors
    /// The set cannot be read or lacks a symbol.
    pub fn load(dir: &Path, symbols: &[Symbol], now: DateTime<Utc>) -> Result<Self, RecordedError> {
        let bars = trader_recorded::read_recorded_symbols(dir, symbols, now)?;
        let hours = trader_engine::common_hours(&bars);
        Ok(TrainingBars {
            bars: trader_engine::at_hours(&bars, &hours),
            hours,
        })
    }

    /// The rows of the training span (up to `train_until`) and of the
    /// validation span (after it, up to `valid_until`).
    #[must_use]
    pub fn span_rows(&self, train_until: i64, valid_until: i64) -> SpanRows {
        SpanRows {
            train: self.hours.iter().filter(|t| **t <= train_until).count(),
            valid: self
                .hours
                .iter()
                .filter(|t| (train_until + 1..=valid_until).contains(*t))
                .count(),
        }
    }
}
