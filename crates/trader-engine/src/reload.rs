//! Live ensemble updates: a running engine follows its ensemble directory
//! and adopts a new selection of its best `top_n` between hours.
//!
//! - **Noticing**: a file watch on the directory (notify; the trainer
//!   renames member directories and `ensemble_params.json` into it), a
//!   check of its [`SelectionStamp`] after every poll (members edited in
//!   place, or no watch; at most every [`LOOK_EVERY`] of real time), and a
//!   [`Reloader::trigger`] the CLI pulls on SIGHUP.
//! - **Checking, then loading off the decision path**: once
//!   `min_hours_between_swaps` clock hours have passed since the ensemble
//!   in use was adopted, a changed selection is read and checked as at
//!   start (manifests and headers, the profile's symbols and history), then
//!   the budget's word is asked ([`SwapCheck`]: the new ensemble next to the
//!   one in use, with the co-tenants as they are now); then it loads on a
//!   blocking thread ([`load_consistent`]: a directory written while it was
//!   read is read again, never adopted torn) while the engine keeps trading
//!   with the ensemble in use.
//! - **Swapping between hours**: [`Engine::between_hours`], called by the
//!   live loop after each poll, puts a loaded ensemble in place of the old
//!   one (then dropped), records the adoption (`ensemble_adoptions`) and
//!   counts it. No hour is decided twice or skipped for it: decisions
//!   happen in [`Engine::on_hour`] only, each with the version it used.
//! - **Refusing**: anything that fails keeps the ensemble in use, with one
//!   WARN and a count by [`RefusalReason`]; the same selection is not tried
//!   again until the directory changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use trader_config::{ReloadMode, ReloadSettings};
use trader_core::{Broker, HOUR_SECS, Symbol, format_time};
use trader_ensemble::{
    Ensemble, EnsembleCatalog, LoadOptions, MemberMisfit, MemberSummary, SelectionStamp,
    check_members_fit, load_consistent,
};
use trader_store::{EnsembleAdoption, Recorder, VersionMember};

use crate::{Engine, EngineError};

/// Whether a file event in the ensemble directory can change what it
/// selects: a file or directory created, written, renamed or removed. Opens,
/// reads and closes without writing cannot, and the trader's own reads of
/// the directory cause them (notify's inotify watch reports opens): waking
/// on them made every look at the directory wake the next, a loop that kept
/// a core busy between hours.
#[must_use]
pub fn selection_may_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    }
}

/// Watches `dir` (not its subdirectories: the trainer renames whole member
/// directories into it) and calls `on_change` for each event that
/// [`selection_may_change`] lets through, and for a watch error (the
/// directory is then looked at, which reports what is wrong).
///
/// # Errors
/// The watch cannot be set up (no inotify, out of watches, no directory).
pub fn watch_selection(
    dir: &std::path::Path,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if !selection_may_change(&e.kind) => {}
            _ => on_change(),
        })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// The budget's word on a swap, given by the caller (trader-session asks
/// trader-budget); the engine never names the budget.
pub trait SwapCheck: Send + Sync {
    /// Whether `members` (the best of `catalog_len`) may load while the
    /// ensemble in use (`in_use_bytes` of weights) stays resident: `Err`
    /// with the reason when they do not fit.
    ///
    /// # Errors
    /// The refusal, in words (numbers included).
    fn admit(
        &self,
        members: &[MemberSummary],
        catalog_len: usize,
        in_use_bytes: u64,
    ) -> Result<(), String>;

    /// This process's resident memory now, bytes (for the swap's record).
    fn rss_bytes(&self) -> Option<u64>;
}

/// Why a new selection was not adopted (the `reason` label of
/// `trader_ensemble_swaps_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalReason {
    /// A manifest, header or tensor failed its checks, or a file is missing.
    Invalid,
    /// A member trades a symbol the profile does not, or the ensemble's
    /// symbols are not the profile's.
    Symbols,
    /// A member needs more history than the profile keeps.
    History,
    /// The budget: the new ensemble does not fit next to the one in use.
    Budget,
    /// Its mean score does not beat the current one's by `min_score_gain`.
    ScoreGain,
}

impl RefusalReason {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Invalid => "invalid",
            RefusalReason::Symbols => "symbols",
            RefusalReason::History => "history",
            RefusalReason::Budget => "budget",
            RefusalReason::ScoreGain => "score_gain",
        }
    }
}

/// One adoption of a new ensemble while the engine ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapRecord {
    /// The last hour handed to the engine before the swap (bar open time).
    pub after_hour: Option<i64>,
    /// Clock time of the swap, epoch seconds.
    pub at: i64,
    pub from: String,
    pub to: String,
    /// The new members, best first.
    pub members: Vec<String>,
    /// Milliseconds the load took (off the decision path).
    pub load_ms: u64,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

/// A loaded ensemble waiting for the next hour boundary.
struct Loaded {
    ensemble: Ensemble,
    stamp: SelectionStamp,
    load_ms: u64,
}

/// A selection not adopted: why, and the stamp it had (None: the directory
/// changed while it was read, so it is looked at again).
struct Refused {
    reason: RefusalReason,
    message: String,
    stamp: Option<SelectionStamp>,
}

/// What the engine needs to follow its directory.
pub struct Reloader {
    dir: PathBuf,
    options: LoadOptions,
    settings: ReloadSettings,
    check: Arc<dyn SwapCheck>,
    wake: Arc<Notify>,
    /// Kept alive: dropping it ends the watch.
    _watcher: Option<notify::RecommendedWatcher>,
    /// The selection in use, and when it was adopted (clock seconds).
    stamp: SelectionStamp,
    adopted_at: i64,
    /// A selection loaded or refused: not looked at again while unchanged.
    looked_at: Option<SelectionStamp>,
    /// The selection whose wait for `min_hours_between_swaps` was logged.
    announced: Option<SelectionStamp>,
    /// The last unreadable-directory message logged.
    last_error: Option<String>,
    loading: Option<(SelectionStamp, JoinHandle<Result<Loaded, Refused>>)>,
    ready: Option<Loaded>,
    /// Real time of the last look at the directory.
    last_look: Option<Instant>,
}

/// Real time between two looks at the directory after polls.
pub const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Reloader {
    /// Follows `dir` (loaded with `options`; the ensemble in use has
    /// `stamp` and was adopted at clock time `adopted_at`), woken by `wake`
    /// (which its file watch pulls too). `None` when `settings.mode` is
    /// off. Without a file watch (unsupported, or out of watches) it says
    /// so and relies on the check at each poll.
    #[must_use]
    pub fn new(
        dir: PathBuf,
        (options, settings): (LoadOptions, ReloadSettings),
        check: Arc<dyn SwapCheck>,
        (stamp, adopted_at): (SelectionStamp, i64),
        wake: Arc<Notify>,
    ) -> Option<Self> {
        if settings.mode == ReloadMode::Off {
            return None;
        }
        let notify_wake = Arc::clone(&wake);
        let watcher = watch_selection(&dir, move || notify_wake.notify_one());
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no file watch on the ensemble directory; it is checked at each poll");
                None
            }
        };
        Some(Reloader {
            dir,
            options,
            settings,
            check,
            wake,
            _watcher: watcher,
            stamp,
            adopted_at,
            looked_at: None,
            announced: None,
            last_error: None,
            loading: None,
            ready: None,
            last_look: None,
        })
    }

    /// Pulled by a file event that can change the selection, or by the
    /// caller (SIGHUP): the live loop
    /// looks at the directory at once instead of at its next poll.
    #[must_use]
    pub fn trigger(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The earliest clock time of the next adoption.
    fn due(&self) -> i64 {
        self.adopted_at + i64::from(self.settings.min_hours_between_swaps) * HOUR_SECS
    }
}

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// Follows the ensemble directory with `reloader` from now on.
    pub fn follow(&mut self, reloader: Reloader) {
        self.reloader = Some(reloader);
    }

    /// What wakes the live loop to look at the directory (None: not
    /// following one).
    #[must_use]
    pub fn reload_trigger(&self) -> Option<Arc<Notify>> {
        self.reloader.as_ref().map(Reloader::trigger)
    }

    /// Records the ensemble this run holds from now on (its first, or the
    /// one it restarted on), with the version before it in this run.
    ///
    /// # Errors
    /// The store.
    pub async fn record_start_version(
        &mut self,
        now: i64,
        load_ms: u64,
        rss: Option<u64>,
    ) -> Result<(), EngineError> {
        let previous = self
            .store
            .adoptions_of_run(self.run_id)
            .await?
            .pop()
            .map(|a| a.version);
        let adoption = self.adoption(previous, now, None, load_ms, (rss, rss));
        self.store.record_adoption(self.run_id, &adoption).await?;
        Ok(())
    }

    fn adoption(
        &self,
        previous: Option<String>,
        now: i64,
        after_hour: Option<i64>,
        load_ms: u64,
        (rss_before, rss_after): (Option<u64>, Option<u64>),
    ) -> EnsembleAdoption {
        let version = self.ensemble.version();
        EnsembleAdoption {
            version: version.id.clone(),
            members: version
                .members
                .iter()
                .enumerate()
                .map(|(rank, m)| VersionMember {
                    name: m.name.clone(),
                    rank: u32::try_from(rank).unwrap_or(u32::MAX),
                    score: m.score,
                })
                .collect(),
            previous,
            adopted_at: now,
            after_hour,
            load_ms,
            rss_before,
            rss_after,
        }
    }

    /// Between hours (the live loop calls it after each poll and when the
    /// directory's watch fires): takes a finished load, swaps a loaded
    /// ensemble in, or looks at the directory and starts a load. Returns
    /// the swap made, if any.
    ///
    /// # Errors
    /// Only the store (recording an adoption).
    pub async fn between_hours(&mut self, now: i64) -> Result<Option<SwapRecord>, EngineError> {
        self.between(now, false).await
    }

    /// [`Engine::between_hours`] after a poll: the directory is looked at
    /// no more often than every [`LOOK_EVERY`] of real time (the watch and
    /// the trigger see changes at once; this check is for members edited
    /// in place), so a fast replay's thousands of polls do not each read it.
    pub(crate) async fn after_poll(&mut self, now: i64) -> Result<Option<SwapRecord>, EngineError> {
        self.between(now, true).await
    }

    async fn between(
        &mut self,
        now: i64,
        throttled: bool,
    ) -> Result<Option<SwapRecord>, EngineError> {
        let Some(r) = self.reloader.as_mut() else {
            return Ok(None);
        };
        if throttled
            && r.loading.is_none()
            && r.ready.is_none()
            && r.last_look.is_some_and(|at| at.elapsed() < LOOK_EVERY)
        {
            return Ok(None);
        }
        if let Some((_, handle)) = r.loading.as_ref()
            && handle.is_finished()
        {
            self.finish_load().await;
        }
        if let Some(loaded) = self.reloader.as_mut().and_then(|r| r.ready.take()) {
            // Adopted only while it is still what the directory selects: a
            // selection rewritten since the load is looked at afresh.
            let current = self
                .reloader
                .as_ref()
                .and_then(|r| SelectionStamp::read(&r.dir, r.options.top_n).ok());
            if current.as_ref() == Some(&loaded.stamp) {
                return self.swap(loaded, now).await.map(Some);
            }
            tracing::info!(
                version = %loaded.ensemble.version().id,
                "the directory changed after the new ensemble loaded; it is not adopted, and the directory is looked at again"
            );
            if let Some(r) = self.reloader.as_mut() {
                r.looked_at = None;
            }
        }
        self.look(now);
        Ok(None)
    }

    /// Waits for a load in flight to end (tests and the end of a run): its
    /// ensemble is then ready for the next [`Engine::between_hours`].
    pub async fn wait_for_load(&mut self) {
        if self.reloader.as_ref().is_some_and(|r| r.loading.is_some()) {
            self.finish_load().await;
        }
    }

    async fn finish_load(&mut self) {
        let Some(r) = self.reloader.as_mut() else {
            return;
        };
        let Some((stamp, handle)) = r.loading.take() else {
            return;
        };
        let outcome = match handle.await {
            Ok(outcome) => outcome,
            Err(e) => Err(Refused {
                reason: RefusalReason::Invalid,
                message: format!("the load stopped: {e}"),
                stamp: Some(stamp),
            }),
        };
        match outcome {
            Ok(loaded) => {
                tracing::info!(
                    version = %loaded.ensemble.version().id,
                    load_ms = loaded.load_ms,
                    "new ensemble loaded; adopted at the next hour boundary"
                );
                r.looked_at = Some(loaded.stamp.clone());
                r.ready = Some(loaded);
            }
            Err(refused) => {
                if let Some(stamp) = refused.stamp {
                    tracing::warn!(
                        reason = refused.reason.as_str(),
                        dir = %r.dir.display(),
                        "new ensemble selection refused; keeping the ensemble in use: {}",
                        refused.message
                    );
                    *self
                        .stats
                        .swaps_refused
                        .entry(refused.reason.as_str())
                        .or_insert(0) += 1;
                    r.looked_at = Some(stamp);
                } else {
                    tracing::debug!("{}", refused.message);
                }
            }
        }
    }

    /// Looks at the directory; starts a load of a changed selection when
    /// one is due.
    fn look(&mut self, now: i64) {
        let in_use_bytes = self.ensemble.weight_bytes();
        let current_mean = self.ensemble.version().mean_score();
        let symbols = self.symbols.clone();
        let history_hours = self.history_hours;
        let Some(r) = self.reloader.as_mut() else {
            return;
        };
        if r.loading.is_some() || r.ready.is_some() {
            return;
        }
        r.last_look = Some(Instant::now());
        let stamp = match SelectionStamp::read(&r.dir, r.options.top_n) {
            Ok(stamp) => stamp,
            Err(e) => {
                let message = e.to_string();
                if r.last_error.as_ref() != Some(&message) {
                    tracing::warn!(error = %message, "the ensemble directory cannot be read now; keeping the ensemble in use");
                    r.last_error = Some(message);
                }
                return;
            }
        };
        r.last_error = None;
        if stamp == r.stamp || r.looked_at.as_ref() == Some(&stamp) {
            return;
        }
        if now < r.due() {
            if r.announced.as_ref() != Some(&stamp) {
                tracing::info!(
                    due = %format_time(r.due()),
                    min_hours_between_swaps = r.settings.min_hours_between_swaps,
                    "a new ensemble selection is in the directory; it is considered no earlier than the due time"
                );
                r.announced = Some(stamp);
            }
            return;
        }
        if let Some(gain) = r.settings.min_score_gain
            && stamp.mean_score < current_mean + gain
        {
            tracing::warn!(
                reason = RefusalReason::ScoreGain.as_str(),
                new = stamp.mean_score,
                current = current_mean,
                min_score_gain = gain,
                "new ensemble selection refused; keeping the ensemble in use: its mean score does not beat the current one's by min_score_gain"
            );
            *self
                .stats
                .swaps_refused
                .entry(RefusalReason::ScoreGain.as_str())
                .or_insert(0) += 1;
            r.looked_at = Some(stamp);
            return;
        }
        let job = LoadJob {
            dir: r.dir.clone(),
            options: r.options,
            check: Arc::clone(&r.check),
            symbols,
            history_hours,
            in_use_bytes,
            stamp: stamp.clone(),
            wake: Arc::clone(&r.wake),
        };
        tracing::info!(members = ?stamp.names, "a new ensemble selection; checking and loading it beside the one in use");
        r.loading = Some((stamp, tokio::task::spawn_blocking(move || job.run())));
    }

    /// Puts `loaded` in place of the ensemble in use (dropped), records and
    /// counts the adoption.
    async fn swap(&mut self, loaded: Loaded, now: i64) -> Result<SwapRecord, EngineError> {
        let check = self.reloader.as_ref().map(|r| Arc::clone(&r.check));
        let rss = || check.as_ref().and_then(|c| c.rss_bytes());
        let rss_before = rss();
        let from = self.ensemble.version().id.clone();
        drop(std::mem::replace(&mut self.ensemble, loaded.ensemble));
        self.forget_prepared();
        let rss_after = rss();
        self.symbols = self.ensemble.symbols().to_vec();
        self.projected = None;
        if let Some(r) = self.reloader.as_mut() {
            r.stamp = loaded.stamp;
            r.adopted_at = now;
            r.looked_at = None;
        }
        let adoption = self.adoption(
            Some(from.clone()),
            now,
            self.last_hour,
            loaded.load_ms,
            (rss_before, rss_after),
        );
        self.store.record_adoption(self.run_id, &adoption).await?;
        let record = SwapRecord {
            after_hour: self.last_hour,
            at: now,
            from,
            to: adoption.version,
            members: adoption.members.into_iter().map(|m| m.name).collect(),
            load_ms: loaded.load_ms,
            rss_before,
            rss_after,
        };
        tracing::info!(
            from = %record.from,
            to = %record.to,
            after_hour = ?record.after_hour.map(format_time),
            load_ms = record.load_ms,
            rss_before = ?record.rss_before,
            rss_after = ?record.rss_after,
            "ensemble swapped between hours"
        );
        self.stats.ensemble_version.clone_from(&record.to);
        self.stats.swaps.push(record.clone());
        Ok(record)
    }
}

/// The work of one load, on a blocking thread.
struct LoadJob {
    dir: PathBuf,
    options: LoadOptions,
    check: Arc<dyn SwapCheck>,
    symbols: Vec<Symbol>,
    history_hours: u32,
    in_use_bytes: u64,
    stamp: SelectionStamp,
    /// Pulled when the job ends, so the live loop takes its result at once.
    wake: Arc<Notify>,
}

impl LoadJob {
    fn run(self) -> Result<Loaded, Refused> {
        let wake = Arc::clone(&self.wake);
        let result = self.load();
        wake.notify_one();
        result
    }

    fn load(self) -> Result<Loaded, Refused> {
        let started = Instant::now();
        let refuse = |reason: RefusalReason, message: String| {
            // A directory that changed while it was read is looked at
            // again, not refused.
            let unchanged = SelectionStamp::read(&self.dir, self.options.top_n)
                .is_ok_and(|now| now == self.stamp);
            Refused {
                reason,
                message: if unchanged {
                    message
                } else {
                    format!("the directory changed while it was read ({message}); reading it again")
                },
                stamp: unchanged.then(|| self.stamp.clone()),
            }
        };
        let invalid = |e: &dyn std::fmt::Display| refuse(RefusalReason::Invalid, e.to_string());
        let catalog = EnsembleCatalog::open(&self.dir).map_err(|e| invalid(&e))?;
        let members = catalog
            .select(self.options.top_n)
            .map_err(|e| invalid(&e))?;
        check_members_fit(&members, &self.symbols, self.history_hours).map_err(|misfit| {
            let reason = match misfit {
                MemberMisfit::Symbol { .. } => RefusalReason::Symbols,
                MemberMisfit::History { .. } => RefusalReason::History,
            };
            refuse(
                reason,
                format!("{misfit} (the profile keeps {} h)", self.history_hours),
            )
        })?;
        self.check
            .admit(&members, catalog.len(), self.in_use_bytes)
            .map_err(|message| refuse(RefusalReason::Budget, message))?;
        let (ensemble, stamp) =
            load_consistent(&self.dir, self.options).map_err(|e| invalid(&e))?;
        if stamp.names != self.stamp.names {
            return Err(Refused {
                reason: RefusalReason::Invalid,
                message: "the selection changed while it was checked; reading it again".to_owned(),
                stamp: None,
            });
        }
        if !same_symbols(ensemble.symbols(), &self.symbols) {
            return Err(refuse(
                RefusalReason::Symbols,
                format!(
                    "the new members trade {:?}, the profile {:?}",
                    ensemble.symbols(),
                    self.symbols
                ),
            ));
        }
        Ok(Loaded {
            ensemble,
            stamp,
            load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// The same symbols, in any order.
pub(crate) fn same_symbols(a: &[Symbol], b: &[Symbol]) -> bool {
    let mut a: Vec<&Symbol> = a.iter().collect();
    let mut b: Vec<&Symbol> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// Refusals by reason label.
pub type RefusalCounts = BTreeMap<&'static str, u64>;
