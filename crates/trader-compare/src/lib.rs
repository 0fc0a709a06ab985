//! Two trader profiles side by side (`trader compare`): each profile's
//! backtest in its own child process, or two live traders against one
//! standalone simulator; then the report: metrics side by side, decision
//! agreement, predicted vs measured memory and latency, and the equity plot.
//!
//! The caller (the `trader` binary) parses the flags, admits both profiles
//! through the budget, listens for SIGINT/SIGTERM (raising a [`Stop`]) and
//! prints; [`compare`] does the rest. Every child process is a command of
//! the binary named by [`Comparison::trader_exe`].

mod backtests;
mod budget;
mod inputs;
mod live;
mod plot;
mod report;
mod stop;
mod supervise;

use std::path::{Path, PathBuf};

pub use budget::{live_cotenant, predicted_rss};
pub use stop::{Interrupted, Signal, Stop};

/// What to compare and where (the flags of `trader compare`).
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The trader binary: the backtests, the simulator and the live traders
    /// are its commands.
    pub trader_exe: PathBuf,
    /// `--config-dir` of the children.
    pub config_dir: PathBuf,
    /// The two profiles, names or TOML paths, as given.
    pub profiles: [String; 2],
    /// The recorded set (one CSV per symbol).
    pub data: PathBuf,
    /// Backtests: the first hour decided, RFC 3339.
    pub from: Option<String>,
    /// Backtests: the last hour decided, RFC 3339.
    pub to: Option<String>,
    /// The report directory (each profile's files in a subdirectory).
    pub out: PathBuf,
    /// `Some`: two live traders against one simulator instead of backtests.
    pub live: Option<Live>,
    /// The RSS the budget predicts for each profile's trader
    /// ([`predicted_rss`] of its admitted report).
    pub predicted_rss: [u64; 2],
}

/// `trader compare --live`: how the simulator and the traders run.
#[derive(Debug, Clone)]
pub struct Live {
    /// How long both traders run, in real seconds.
    pub duration_secs: u64,
    /// The simulator's speed (simulated seconds per real second).
    pub speed: f64,
    /// The simulator's start, RFC 3339 (`None`: its default).
    pub start: Option<String>,
    /// `Some`: no simulator and no traders are started; the newest run of
    /// each profile is read from this shared store (two traders running on
    /// other hosts, one PostgreSQL database).
    pub store: Option<trader_core::StoreLocation>,
}

/// What [`compare`] concluded.
#[derive(Debug)]
pub enum Compared {
    /// `report.json`, `equity.svg` and `report.md` written; the markdown.
    Report(String),
    /// A signal stopped the children before both profiles had their files;
    /// no report written.
    Interrupted(Interrupted),
}

/// The directory name of a profile argument (`lean`, or `x/y.toml` -> `y`).
#[must_use]
pub fn profile_name(profile: &str) -> String {
    Path::new(profile)
        .file_stem()
        .map_or_else(|| profile.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Produces each profile's files in `out/NAME/` (backtests, or the live
/// runs), then writes the report from them. Children still running when
/// this returns (an error, a signal) are killed with their process groups.
pub fn compare(c: &Comparison, stop: &Stop) -> anyhow::Result<Compared> {
    let produced = match &c.live {
        Some(live) => live::produce(c, live, stop),
        None => backtests::produce(c, stop),
    };
    let names = match produced {
        Ok(names) => names,
        Err(e) => {
            return match e.downcast::<Interrupted>() {
                Ok(interrupted) => Ok(Compared::Interrupted(interrupted)),
                Err(e) => Err(e),
            };
        }
    };
    let mut outputs = Vec::new();
    for (predicted, name) in c.predicted_rss.into_iter().zip(names) {
        outputs.push(inputs::Output::read(&c.out, name, predicted)?);
    }
    let [a, b] = <[inputs::Output; 2]>::try_from(outputs)
        .map_err(|o| anyhow::anyhow!("expected two profiles' outputs, got {}", o.len()))?;
    report::write(&c.out, &a, &b).map(Compared::Report)
}
