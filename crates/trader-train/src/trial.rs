//! One trial, as a worker runs it: train on the training span, write the
//! member to staging, score it with the engine's backtest on the validation
//! span (the member alone, traded by the profile's rules against the
//! simulator's in-process paper broker), then move it into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use trader_config::Profile;
use trader_core::{
    Aggregate, Bar, ComputeDevice, HOUR_SECS, ManualClock, PAPER_STARTING_CASH, Symbol, format_time,
};
use trader_engine::{
    BacktestSpan, Engine, EngineError, EngineSetup, Hourly, Metrics, buy_and_hold, report_files,
    run_backtest,
};
use trader_ensemble::EnsembleError;
use trader_recorded::RecordedError;
use trader_sim::PaperBroker;
use trader_store::{MemoryRecorder, RunMode, StoreError};

use crate::{
    DatasetError, FinishedTrial, HyperParams, SearchSettings, TrainError, TrainingBars,
    TrialResult, train_member, trial_dir_name, write_ensemble_file, write_member,
};

/// Hours per block of the validation backtest's batched first layer.
pub const VALIDATION_BLOCK_HOURS: usize = 256;

/// Why a trial produced no member.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Recorded(#[from] RecordedError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("no validation hour after {0}")]
    NoValidationHour(String),
    #[error("the staged member: {0}")]
    Ensemble(#[from] EnsembleError),
    #[error("the validation backtest: {0}")]
    Engine(#[from] EngineError),
    #[error("the validation backtest's records: {0}")]
    Store(#[from] StoreError),
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one trial runs on.
#[derive(Debug, Clone, Copy)]
pub struct TrialSpec<'a> {
    pub settings: &'a SearchSettings,
    /// The recorded set.
    pub data: &'a Path,
    /// When the bars are read (bars not closed by then are refused).
    pub now: DateTime<Utc>,
    /// The search's output directory (the member is staged in
    /// `out/.staging/trial_NNNN/`).
    pub out: &'a Path,
    /// The search's seed.
    pub seed: u64,
    pub trial: u32,
    /// Last hour whose features and target train.
    pub train_until: i64,
    /// Last hour of the validation span.
    pub valid_until: i64,
}

/// Runs trial `spec.trial`: samples its hyperparameters from (seed, trial),
/// trains on the training span, writes the member to
/// `out/.staging/trial_NNNN/`, scores it by [`validate_member`] (Sharpe,
/// 0 when not finite), writes the score and renames the member directory
/// into `out/` (it appears complete or not at all). `peak_rss` is read
/// last, for the result.
///
/// # Errors
/// The bars, the training, the validation backtest or a file failed.
pub async fn run_trial(
    spec: TrialSpec<'_>,
    peak_rss: impl FnOnce() -> u64,
) -> Result<TrialResult, TrialError> {
    let started = Instant::now();
    let TrialSpec {
        settings,
        data,
        now,
        out,
        seed,
        trial,
        train_until,
        valid_until,
    } = spec;
    let TrainingBars { bars, hours } = TrainingBars::load(data, &settings.symbols, now)?;
    let hp = HyperParams::sample(seed, trial, settings.space);
    let first = hours.first().copied().unwrap_or(0);
    let dataset = crate::Dataset::build(&bars, &settings.symbols, &hp, first, train_until)?;
    let member = train_member(&dataset, &hp, &settings.symbols)?;
    let name = trial_dir_name(trial);
    let stage = out.join(".staging").join(&name);
    write_member(&stage.join(&name), &member, None)?;
    write_ensemble_file(
        &stage,
        &[FinishedTrial {
            trial,
            dir: name.clone(),
            score: 0.0,
        }],
        1,
    )
    .map_err(|source| TrialError::Io {
        what: "writing the staged ensemble file",
        path: stage.clone(),
        source,
    })?;
    let metrics = validate_member(
        settings,
        &stage,
        &bars,
        &hours,
        (train_until, valid_until),
        &hp,
    )
    .await?;
    let score = if metrics.sharpe.is_finite() {
        metrics.sharpe
    } else {
        0.0
    };
    write_member(&stage.join(&name), &member, Some(score))?;
    let target = out.join(&name);
    fs_err::rename(stage.join(&name), &target).map_err(|source| TrialError::Io {
        what: "moving the finished member into place",
        path: target.clone(),
        source,
    })?;
    let _ = fs_err::remove_dir_all(&stage);
    Ok(TrialResult {
        trial,
        score,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss(),
        train_rows: dataset.rows,
        final_loss: member.epoch_losses.last().copied().unwrap_or(f32::NAN),
        validation_return: metrics.total_return,
        validation_orders: metrics.orders,
    })
}

/// The backtest of the ensemble in `ensemble_dir` (the staged member alone:
/// `top_n` 1, mean, CPU, its own history `hp.required_history_hours()`)
/// over the common hours in `(train_until, valid_until]`, traded by the
/// settings' profile's `[trading]` rules against the simulator's paper
/// broker in process, recorded in memory; its metrics.
///
/// # Errors
/// No validation hour, an ensemble that does not load, or what stops the
/// engine.
pub async fn validate_member(
    settings: &SearchSettings,
    ensemble_dir: &Path,
    bars: &BTreeMap<Symbol, Vec<Bar>>,
    hours: &[i64],
    (train_until, valid_until): (i64, i64),
    hp: &HyperParams,
) -> Result<Metrics, TrialError> {
    let decided: Vec<i64> = hours
        .iter()
        .copied()
        .filter(|t| (train_until + HOUR_SECS..=valid_until).contains(t))
        .collect();
    let Some(&first) = decided.first() else {
        return Err(TrialError::NoValidationHour(format_time(train_until)));
    };
    // The member alone, traded by the profile's rules.
    let profile = Profile {
        name: "train".to_owned(),
        symbols: settings.symbols.clone(),
        history_hours: hp.required_history_hours().max(1),
        ensemble_dir: ensemble_dir.to_path_buf(),
        top_n: 1,
        aggregate: Aggregate::Mean,
        device: ComputeDevice::Cpu,
        metrics_port: None,
        ..settings.profile.clone()
    };
    let run_id = 1;
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(first, 0).unwrap_or_default(),
    ));
    let broker = PaperBroker::new(bars.clone(), PAPER_STARTING_CASH, clock.clone());
    let (ensemble, _) = trader_engine::load_ensemble(&profile)?;
    let mut engine = Engine::new(
        broker,
        MemoryRecorder::new(),
        ensemble,
        EngineSetup::for_profile(&profile, run_id, RunMode::Backtest),
    )
    .await?;
    let curve = run_backtest(
        &mut engine,
        &clock,
        BacktestSpan {
            bars,
            hours,
            decided: &decided,
            block_hours: Some(VALIDATION_BLOCK_HOURS),
            history_hours: profile.history_hours,
        },
        || {},
    )
    .await?;
    let bh = buy_and_hold(bars, &decided);
    let (metrics, _, _) = report_files(
        engine.store(),
        run_id,
        &profile.name,
        &decided,
        Hourly {
            curve: &curve.equity,
            exposure: &curve.exposure,
            buy_and_hold: &bh,
        },
    )
    .await?;
    Ok(metrics)
}
