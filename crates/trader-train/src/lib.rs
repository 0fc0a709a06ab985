//! The hyperparameter search behind `trader train`, all of it but the
//! processes: the CLI parses the flags, gates the worker count with the
//! budgeter, starts each worker as a process of the `trader` binary (a
//! [`Launcher`]) and prints.
//!
//! - **Settings** ([`SearchSettings::resolve`]): the profile the ensemble is
//!   for, its symbols and `history_hours` unless the caller chose others,
//!   the [`SearchSpace`]; the recorded bars at the hours every symbol has
//!   ([`TrainingBars`], with the rows of each span).
//! - **Resume** ([`Resumed::prepare`]): a search's output directory is
//!   cleared of the staging a stopped search left, its finished members are
//!   collected and re-ranked, and the trials without one
//!   ([`missing_trials`]) are run.
//! - **Scheduling** ([`run_search`]): W workers kept busy in trial order,
//!   each finished trial recorded with its worker slot's bookkeeping and
//!   `ensemble_params.json` rewritten after it; a worker stopped by a signal
//!   stops the launching. The result is the [`SearchSummary`].
//! - **One trial** ([`run_trial`], in a worker): one seeded sample of
//!   hyperparameters ([`HyperParams::sample`]: lookback, feature subset,
//!   hidden sizes, learning rate, epochs, weight decay, batch size, target
//!   horizon), one actor MLP trained on the training span
//!   ([`train_member`]), written as a member directory of DESIGN.md
//!   ([`write_member`]) in staging, scored by [`validate_member`]: the
//!   engine's backtest loop (`trader_engine::run_backtest`) on the member
//!   alone over the validation span, against the simulator's in-process
//!   `trader_sim::PaperBroker`, its Sharpe after fees (`trader_engine::Metrics`),
//!   then renamed into place. [`write_ensemble_file`] ranks the finished
//!   members by score and replaces `ensemble_params.json` atomically (temp
//!   file + rename), so a trader can load the ensemble while the search goes
//!   on.
//!
//! **Objective and method.** Supervised regression: the actor's tanh output
//! for symbol s at hour t is trained (MSE, AdamW) towards
//! `tanh(r_s / sigma_s)`, where r_s is the log return from the close of t to
//! the close of t + horizon and sigma_s its standard deviation over the
//! training span. The trader buys `clamp(a, 0, 1) * max_weight`, so the
//! target asks for a position that grows with the expected move in units of
//! its usual size, and for none when a fall is expected. The portfolio part
//! of each training state (cash and position weights) is drawn at random,
//! so the policy sees the inputs it will see live without its target
//! depending on them. Why not a policy gradient on the backtest reward: on
//! the 2 CPU cores this runs on, a backtest costs seconds, a supervised epoch
//! milliseconds; a search of tens of trials has to finish in minutes, and the
//! validation backtest (Sharpe after fees) already ranks the members by what
//! the trader would earn, which is where the reward enters.
//!
//! Everything is seeded: the same seed, data and trial number give the same
//! hyperparameters, weights and (through the deterministic backtest) score.
//! Weights are initialised by this crate (PyTorch's Linear default, from the
//! seeded generator), not by candle's unseeded CPU generator.
//!
//! What it does not do: decide how many workers fit (the budgeter's gate,
//! in `trader-cli/src/train_cmd.rs` for now), start processes, handle
//! signals or print (trader-cli).
//!
//! Tests: `cargo test -p trader-train`.

mod dataset;
mod ensemble_file;
mod fit;
mod governed;
mod hparams;
mod resume;
mod schedule;
mod settings;
mod trial;

pub use dataset::{Dataset, DatasetError};
pub use ensemble_file::{FinishedTrial, finished_trials, trial_dir_name, write_ensemble_file};
pub use fit::{TrainError, TrainedMember, train_member, write_member};
pub use governed::{Governance, GovernorView, MemoryProbe};
pub use hparams::{HIDDEN_CHOICES, HyperParams, SearchSpace, training_demand_bytes};
pub use resume::{Resumed, missing_trials};
pub use schedule::{
    LaunchError, Launcher, POLL_INTERVAL, Progress, RETRY_BACKOFF_MAX, SearchPlan, SearchSummary,
    SharedTrials, TrialResult, WorkerFailure, WorkerSignal, WorkerStats, run_search,
    run_shared_search,
};
pub use settings::{SearchSettings, SpanRows, TrainingBars};
pub use trial::{TrialError, TrialSpec, VALIDATION_BLOCK_HOURS, run_trial, validate_member};
