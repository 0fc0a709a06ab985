//! The search's output directory: finished member directories and the
//! ranked `ensemble_params.json`.

use std::path::{Path, PathBuf};

use trader_ensemble::{EnsembleParams, MemberParams, MemberRef};

/// A member directory with its score (a finished trial).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTrial {
    pub trial: u32,
    pub dir: String,
    pub score: f64,
}

/// `trial_0007`.
#[must_use]
pub fn trial_dir_name(trial: u32) -> String {
    format!("trial_{trial:04}")
}

/// The finished trials under `out`: `trial_NNNN` directories whose
/// params.json parses and has a finite score. Member directories only
/// appear complete (they are renamed into place), so anything else is not
/// a finished trial.
///
/// # Errors
/// `out` cannot be listed.
pub fn finished_trials(out: &Path) -> std::io::Result<Vec<FinishedTrial>> {
    let mut trials = Vec::new();
    if !out.is_dir() {
        return Ok(trials);
    }
    for entry in fs_err::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(trial) = name
            .strip_prefix("trial_")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = fs_err::read_to_string(entry.path().join("params.json")) else {
            continue;
        };
        let Ok(params) = serde_json::from_str::<MemberParams>(&text) else {
            continue;
        };
        if let Some(score) = params.score.filter(|s| s.is_finite()) {
            trials.push(FinishedTrial {
                trial,
                dir: name,
                score,
            });
        }
    }
    trials.sort_by_key(|t| t.trial);
    Ok(trials)
}

/// Rewrites `out/ensemble_params.json` with `trials` ranked best first
/// (ties by directory name): written to a temporary file in `out`, flushed,
/// then renamed over the old one, so a reader sees the old file or the new
/// one, never half of either.
///
/// # Errors
/// The file cannot be written or renamed.
pub fn write_ensemble_file(
    out: &Path,
    trials: &[FinishedTrial],
    top_n: u32,
) -> std::io::Result<PathBuf> {
    let mut ranked = trials.to_vec();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.dir.cmp(&b.dir)));
    let params = EnsembleParams {
        format: 1,
        top_n: Some(top_n),
        aggregate: Some("mean".to_owned()),
        members: ranked
            .iter()
            .map(|t| MemberRef {
                dir: t.dir.clone(),
                score: t.score,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&params).map_err(std::io::Error::other)? + "\n";
    let path = out.join("ensemble_params.json");
    let tmp = out.join(".ensemble_params.json.tmp");
    {
        use std::io::Write;
        let mut f = fs_err::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs_err::rename(&tmp, &path)?;
    Ok(path)
}
