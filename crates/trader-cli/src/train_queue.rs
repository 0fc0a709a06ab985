//! `trader train --queue postgres://...`: this host's side of a search
//! shared through PostgreSQL ([`trader_store::TrialQueue`]), as the
//! scheduler's [`SharedTrials`]. The members live in the database; after
//! each trial this host finishes, the database's ranking is materialised
//! into its `--out` (the `top_n` best members of every host, each written
//! in `.staging` and renamed into place, then `ensemble_params.json`), so a
//! trader with `reload = "on-change"` on that folder follows the database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use trader_core::Clock as _;
use trader_core::StoreLocation;
use trader_store::TrialQueue;
use trader_train::{FinishedTrial, LaunchError, SharedTrials, TrialResult, trial_dir_name};

/// How often a host with nothing to run asks whether other hosts' trials
/// are still held.
const PENDING_POLL: Duration = Duration::from_secs(1);

/// This host's queue, its runtime (the scheduler is synchronous), and the
/// folder it materialises the ranking into.
pub(crate) struct HostQueue {
    queue: TrialQueue,
    runtime: tokio::runtime::Runtime,
    out: PathBuf,
    top_n: u32,
    last_pending: Option<(Instant, bool)>,
}

/// What identifies a search across hosts: every flag that changes what a
/// trial computes or how it is scored.
pub(crate) struct SearchIdentity<'a> {
    pub(crate) name: &'a str,
    pub(crate) settings_json: String,
    pub(crate) trials: u32,
    pub(crate) top_n: u32,
}

impl HostQueue {
    pub(crate) fn join(
        location: &StoreLocation,
        id: &SearchIdentity<'_>,
        out: &Path,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the queue's runtime")?;
        let host = format!("{} pid {}", trader_store::host_name(), std::process::id());
        let queue = runtime.block_on(TrialQueue::join(
            location,
            id.name,
            &id.settings_json,
            id.trials,
            id.top_n,
            &host,
            trader_core::SystemClock.now().timestamp(),
        ))?;
        tracing::info!(search = id.name, store = %location, host, "joined the shared search");
        Ok(HostQueue {
            queue,
            runtime,
            out: out.to_path_buf(),
            top_n: id.top_n,
            last_pending: None,
        })
    }

    /// Follows the search `search` without claiming (a trader's box).
    pub(crate) fn follow(
        location: &StoreLocation,
        search: &str,
        out: &Path,
        top_n: Option<u32>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the queue's runtime")?;
        let (queue, search_top_n) = runtime.block_on(TrialQueue::follow(location, search))?;
        fs_err::create_dir_all(out)?;
        Ok(HostQueue {
            queue,
            runtime,
            out: out.to_path_buf(),
            top_n: top_n.unwrap_or(search_top_n),
            last_pending: None,
        })
    }

    /// Writes the `top_n` best members of the database missing from `out`
    /// (each in `.staging`, renamed into place), and returns every ranked
    /// member present in `out`.
    pub(crate) fn materialise(&mut self) -> Result<Vec<FinishedTrial>, LaunchError> {
        let out = self.out.clone();
        let top_n = self.top_n as usize;
        let queue = &self.queue;
        let ranking = self.runtime.block_on(queue.ranking())?;
        let mut present = Vec::new();
        for (rank, t) in ranking.iter().enumerate() {
            let dir = trial_dir_name(t.trial);
            let target = out.join(&dir);
            if !target.is_dir() && rank < top_n {
                let staging = out.join(".staging").join(&dir);
                if staging.exists() {
                    fs_err::remove_dir_all(&staging)?;
                }
                self.runtime
                    .block_on(queue.write_member(t.trial, &staging))?;
                fs_err::rename(&staging, &target)?;
                tracing::info!(trial = t.trial, from = %t.host, "member of another host materialised");
            }
            if target.is_dir() {
                present.push(FinishedTrial {
                    trial: t.trial,
                    dir,
                    score: t.score,
                });
            }
        }
        if !present.is_empty() {
            trader_train::write_ensemble_file(&out, &present, self.top_n)?;
        }
        Ok(present)
    }

    /// Rolls back every claim and closes the connections.
    pub(crate) fn close(self) {
        let HostQueue { queue, runtime, .. } = self;
        runtime.block_on(queue.close());
    }
}

impl SharedTrials for HostQueue {
    fn claim(&mut self) -> Result<Option<u32>, LaunchError> {
        Ok(self.runtime.block_on(self.queue.claim())?)
    }

    fn others_pending(&mut self) -> Result<bool, LaunchError> {
        if let Some((at, pending)) = self.last_pending
            && at.elapsed() < PENDING_POLL
        {
            return Ok(pending);
        }
        let counts = self.runtime.block_on(self.queue.counts())?;
        let pending = counts.queued > self.queue.claimed().len() as u64;
        self.last_pending = Some((Instant::now(), pending));
        Ok(pending)
    }

    fn finished(&mut self, result: &TrialResult) -> Result<Vec<FinishedTrial>, LaunchError> {
        let member = self.out.join(trial_dir_name(result.trial));
        let json = serde_json::to_string(result)?;
        let now = trader_core::SystemClock.now().timestamp();
        self.runtime.block_on(self.queue.finish(
            result.trial,
            result.score,
            &json,
            &member,
            now,
        ))?;
        self.materialise()
    }

    fn failed(&mut self, trial: u32, why: &str) -> Result<(), LaunchError> {
        let now = trader_core::SystemClock.now().timestamp();
        Ok(self.runtime.block_on(self.queue.fail(trial, why, now))?)
    }

    fn release(&mut self, trial: u32) {
        self.runtime.block_on(self.queue.release(trial));
    }
}
