//! Where a search starts: the output directory cleared of what a stopped
//! search left half done, the trials already finished, and those to run.

use std::path::Path;

use crate::{FinishedTrial, finished_trials, write_ensemble_file};

/// The state of a search's output directory before it (re)starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// Finished trials of this search (trial numbers below its count), by
    /// trial number.
    pub finished: Vec<FinishedTrial>,
    /// The trials still to run, ascending.
    pub todo: Vec<u32>,
}

impl Resumed {
    /// Prepares `out` for a search of trials `0..trials`: creates it,
    /// removes `out/.staging` (trials in flight when a search stopped leave
    /// only their staging copy), collects the finished member directories
    /// and, when there are any, rewrites `ensemble_params.json` from them
    /// with `top_n`. The trials without a finished member are to run.
    ///
    /// # Errors
    /// `out` cannot be created or listed, the staging not removed, or the
    /// ensemble file not written.
    pub fn prepare(out: &Path, trials: u32, top_n: u32) -> std::io::Result<Self> {
        fs_err::create_dir_all(out).map_err(|e| at(out, "creating the output directory", &e))?;
        let staging = out.join(".staging");
        if staging.exists() {
            fs_err::remove_dir_all(&staging)
                .map_err(|e| at(&staging, "clearing the staging of a stopped search", &e))?;
        }
        let finished: Vec<FinishedTrial> = finished_trials(out)?
            .into_iter()
            .filter(|t| t.trial < trials)
            .collect();
        if !finished.is_empty() {
            write_ensemble_file(out, &finished, top_n)?;
        }
        let todo = missing_trials(trials, &finished);
        Ok(Resumed { finished, todo })
    }
}

/// The trials of `0..trials` not in `finished`, ascending.
#[must_use]
pub fn missing_trials(trials: u32, finished: &[FinishedTrial]) -> Vec<u32> {
    (0..trials)
        .filter(|t| !finished.iter().any(|f| f.trial == *t))
        .collect()
}

fn at(path: &Path, what: &str, e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {}: {e}", path.display()))
}
