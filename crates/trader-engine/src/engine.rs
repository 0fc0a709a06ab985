//! The engine of one trader: its setup, its counts, and what it holds.

use trader_config::TradingSettings;
use trader_core::{Broker, Symbol};
use trader_ensemble::{
    Ensemble, EnsembleError, ForwardMode, LoadOptions, SelectionStamp, load_consistent,
};
use trader_store::{HistoryWindow, Recorder, RunMode, Store};

use crate::EngineError;
use crate::plan::order_id_prefix;
use crate::projection::Projected;

/// What happened to one closed hour.
#[derive(Debug, Clone, PartialEq)]
pub enum HourOutcome {
    /// Decided; orders sent (or planned and to be settled).
    Decided { orders: usize, latency_us: u64 },
    /// Already decided by this run before a restart.
    AlreadyDecided,
    /// Not traded, and why (recorded in the decision's `skipped_reason`).
    Skipped(String),
}

/// Counts of one engine's life, for the summary and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub hours: u64,
    pub bars: u64,
    pub decisions: u64,
    pub skipped: u64,
    pub already_decided: u64,
    pub orders_sent: u64,
    pub orders_adopted: u64,
    pub orders_failed: u64,
    pub fills: u64,
    /// Decision latency (features, state and inference), microseconds, in order.
    pub latencies_us: Vec<u64>,
    /// Where each decision's time went, in order.
    pub splits: Vec<crate::DecisionSplit>,
    /// Live: preparing the next hour after each decision (off the decision
    /// path), microseconds, in order.
    pub prepare_us: Vec<u64>,
    /// From the hour's bars handed over to the last of its orders answered
    /// (store, settle, broker reads, decision, orders), microseconds, for
    /// hours that sent orders.
    pub bar_to_order_us: Vec<u64>,
    /// Time spent computing batched first layers ([`Engine::project_market`]),
    /// microseconds in all, and the hours they covered.
    pub projection_us: u64,
    pub projected_hours: u64,
    /// Projected hours whose decision had been computed ahead with the
    /// portfolio part they had (nothing traded in between).
    pub decided_ahead: u64,
    /// The version of the ensemble in use ([`trader_ensemble::EnsembleVersion`]).
    pub ensemble_version: String,
    /// Ensembles adopted while the engine ran, in order.
    pub swaps: Vec<crate::SwapRecord>,
    /// New selections not adopted, by [`crate::RefusalReason`] label.
    pub swaps_refused: crate::RefusalCounts,
}

/// Who the engine trades for.
#[derive(Debug, Clone, Copy)]
pub struct EngineSetup<'a> {
    /// Profile name: the prefix of every `client_order_id`.
    pub profile: &'a str,
    /// How the run reaches its broker: a live run's order ids are the same
    /// in every run of the profile (the account outlives runs, and the
    /// broker's duplicate check guards it); a replay's or backtest's carry
    /// the run id (each run is a new account, and its orders must not
    /// collide with an earlier run's in the store).
    pub mode: RunMode,
    /// The profile's symbols (the ensemble must trade the same).
    pub symbols: &'a [Symbol],
    pub history_hours: u32,
    pub run_id: i64,
    pub trading: TradingSettings,
}

/// How a profile's ensemble loads: its best `top_n` members, at its dtype,
/// on its device, aggregated its way.
#[must_use]
pub fn load_options(profile: &trader_config::Profile) -> LoadOptions {
    LoadOptions {
        top_n: profile.top_n as usize,
        dtype: profile.dtype,
        device: profile.device,
        aggregate: profile.aggregate,
        mode: ForwardMode::default_for(profile.dtype),
    }
}

/// A profile's ensemble ([`load_options`]), read while its directory held
/// still ([`load_consistent`]), and the selection's stamp.
///
/// # Errors
/// The ensemble directory or a member cannot be read or loaded, or the
/// directory kept changing while it was read.
pub fn load_ensemble(
    profile: &trader_config::Profile,
) -> Result<(Ensemble, SelectionStamp), EnsembleError> {
    load_consistent(&profile.ensemble_dir, load_options(profile))
}

impl<'a> EngineSetup<'a> {
    /// The setup of `profile`'s trader in run `run_id`.
    #[must_use]
    pub fn for_profile(profile: &'a trader_config::Profile, run_id: i64, mode: RunMode) -> Self {
        EngineSetup {
            profile: &profile.name,
            mode,
            symbols: &profile.symbols,
            history_hours: profile.history_hours,
            run_id,
            trading: profile.trading,
        }
    }
}

/// The engine of one trader: broker `B`, records in `R` (the SQLite
/// [`Store`] for `trader run`; a `MemoryRecorder` serves backtests).
pub struct Engine<B, R = Store> {
    pub(crate) broker: B,
    pub(crate) store: R,
    pub(crate) ensemble: Ensemble,
    pub(crate) window: HistoryWindow,
    /// The prefix of this run's order ids ([`order_id_prefix`]).
    pub(crate) order_prefix: String,
    pub(crate) run_id: i64,
    pub(crate) trading: TradingSettings,
    /// The ensemble's symbols, in its output order.
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) stats: EngineStats,
    pub(crate) history_hours: u32,
    /// Backtests: the first layer's market part of hours to come.
    /// Projected hours decided together (`set_hours_ahead`).
    pub(crate) hours_ahead: usize,
    pub(crate) projected: Option<Projected>,
    /// Live: the next hour, prepared ahead ([`crate::decide`]).
    pub(crate) next: Option<crate::decide::PreparedNext>,
    /// Whether live hours are prepared ahead (on unless turned off).
    pub(crate) prepare_ahead: bool,
    /// The last hour handed to [`Engine::on_hour`].
    pub(crate) last_hour: Option<i64>,
    /// Following the ensemble directory (`[ensemble] reload = "on-change"`).
    pub(crate) reloader: Option<crate::Reloader>,
}

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// An engine for `run_id`, trading `profile_symbols` with `ensemble`
    /// (same symbols, any order), its window loaded from `store`.
    ///
    /// # Errors
    /// The ensemble and the profile trade different symbols, or the store
    /// cannot be read.
    pub async fn new(
        broker: B,
        store: R,
        ensemble: Ensemble,
        setup: EngineSetup<'_>,
    ) -> Result<Self, EngineError> {
        let EngineSetup {
            profile,
            mode,
            symbols: profile_symbols,
            history_hours,
            run_id,
            trading,
        } = setup;
        let symbols = ensemble.symbols().to_vec();
        if !crate::reload::same_symbols(&symbols, profile_symbols) {
            return Err(EngineError::Symbols {
                model: symbols.iter().map(|s| s.as_str().to_owned()).collect(),
                profile: profile_symbols
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            });
        }
        let window = store.load_window(&symbols, history_hours).await?;
        let stats = EngineStats {
            ensemble_version: ensemble.version().id.clone(),
            ..EngineStats::default()
        };
        Ok(Engine {
            broker,
            store,
            ensemble,
            window,
            order_prefix: order_id_prefix(profile, mode, run_id),
            run_id,
            trading,
            symbols,
            stats,
            history_hours,
            projected: None,
            next: None,
            prepare_ahead: true,
            hours_ahead: crate::projection::HOURS_AHEAD,
            last_hour: None,
            reloader: None,
        })
    }

    /// Turns preparing the next hour ahead ([`crate::decide`]) on or off;
    /// off, every hour not projected is decided whole (for comparisons).
    pub fn set_prepare_ahead(&mut self, on: bool) {
        self.prepare_ahead = on;
        if !on {
            self.next = None;
        }
    }

    /// How many projected hours are decided together (the hour at hand and
    /// the next ones, assuming nothing trades; [`crate::projection`]); 1
    /// decides each hour alone (for comparisons). Clamped to at least 1.
    pub fn set_hours_ahead(&mut self, hours: usize) {
        self.hours_ahead = hours.max(1);
    }

    #[must_use]
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The ensemble in use.
    #[must_use]
    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    #[must_use]
    pub fn store(&self) -> &R {
        &self.store
    }

    #[must_use]
    pub fn broker(&self) -> &B {
        &self.broker
    }

    #[must_use]
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The newest bar held for every symbol: the hour the poll loop should
    /// continue after.
    #[must_use]
    pub fn newest_common_bar(&self) -> Option<i64> {
        self.symbols
            .iter()
            .map(|s| self.window.bars(s).last().map(|b| b.t))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min())
    }
}
