//! The trader's memory of the market and the record of its runs: a real SQLite
//! file (WAL, foreign keys on) or a PostgreSQL database shared by several
//! traders and hosts, both through sqlx's `Any` driver with the same SQL
//! (numbered placeholders, `ON CONFLICT` upserts) and each backend's own
//! migrations embedded (`migrations/sqlite`, `migrations/postgres`), bars
//! pruned to `history_hours` per symbol on every insert batch (the longest
//! history any profile of the store keeps: `bar_retention`), and the capped
//! in-memory [`HistoryWindow`] loaded from it at start (a restarted trader
//! does not re-fetch what it has).
//!
//! Bars in are validated ([`trader_core::Bar::validate`]) before anything is
//! written: a batch with one bad bar is refused whole, naming the symbol, the
//! hour, the field and the value, and nothing already stored is lost. The same
//! bar twice changes nothing; a corrected bar for the same hour replaces the
//! old one and is logged.
//!
//! The `runs`, `decisions`, `orders`, `fills` and `equity` tables are written
//! by `records.rs`: a decision and its planned orders in one transaction
//! before any order is sent, so a killed trader knows on restart what it
//! decided and what it may have sent. They are never pruned. Each decision
//! names the ensemble version that made it; `ensemble_versions` and
//! `ensemble_adoptions` (`versions.rs`) say which version a run adopted
//! when, at its start and at each swap between hours.
//!
//! One trader per store and profile: [`ProfileLock`] (an OS file lock beside
//! a SQLite file, an advisory lock on PostgreSQL; both released when the
//! holder dies). A replay or a backtest
//! writes its run records through [`Store::records_only`], which never
//! touches the bar history. Every write transaction takes the write lock at
//! once and waits for another writer: SQLite's `BEGIN IMMEDIATE` (up to 30 s),
//! PostgreSQL's transaction-scoped advisory lock, so a batch's reads and
//! writes are one step for every host.
//!
//! `data import` lives here without its command line
//! ([`Store::import_recorded`]: parsed bars in batches of [`IMPORT_BATCH`],
//! one transaction each, stopping at a batch boundary), and so does the
//! reading behind `data features` ([`Store::features_at`]).
//!
//! What it does not do: compute features (trader-core: `features_at` only
//! reads the window and asks it) or fetch bars (trader-alpaca), or read
//! recorded files (trader-recorded). Tests: `cargo test -p trader-store` (real SQLite files in
//! temp dirs, through the real migrations; with `TRADER_TEST_PG_URL` set, the
//! same tests on a database each of that PostgreSQL server: [`scratch_location`]).

mod error;
mod features;
mod import;
mod lock;
mod recorder;
mod records;
mod scratch;
mod store;
mod store_records;
mod trial_queue;
mod versions;
mod window;

pub use error::StoreError;
pub use features::FeaturesAt;
pub use import::{IMPORT_BATCH, ImportReport, ImportedSymbol};
pub use lock::{ProfileLock, host_name, lock_path};
pub use recorder::{MemoryRecorder, Recorder};
pub use records::{
    DecisionRecord, DecisionRow, FillRow, LastDecision, LastEquity, NewestRun, OrderState,
    PlannedOrder, ProfileStatus, RunCounts, RunMode, RunStart, StoredOrder,
};
pub use scratch::{scratch_database_url, scratch_location};
pub use store::{InsertReport, Store};
pub use trial_queue::{QueueCounts, RankedTrial, TrialQueue};
pub use versions::{CurrentEnsemble, EnsembleAdoption, VersionMember};
pub use window::{HistoryWindow, PushOutcome};
