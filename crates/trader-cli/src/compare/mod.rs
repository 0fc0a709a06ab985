//! `trader compare --profiles A,B [--data DIR] [--from T] [--to T] [--out DIR]`:
//! the flags, both profiles through the budget gate, the SIGINT/SIGTERM
//! listener, and the printed report; the comparison itself (each profile's
//! backtest in its own process, or `--live`: two `trader run` against one
//! simulator; `report.json`, `report.md`, `equity.svg`) is trader-compare's.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use trader_compare::{Compared, Comparison, Live, live_cotenant, predicted_rss};

use crate::gate::{Gate, admit};
use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Two profiles, comma-separated (names or TOML paths).
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) profiles: Vec<String>,
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    pub(crate) data: PathBuf,
    /// First hour decided, RFC 3339.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Last hour decided, RFC 3339.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Report directory (each profile's files go in a subdirectory).
    #[arg(long, default_value = "compare")]
    pub(crate) out: PathBuf,
    /// Instead of backtests: two concurrent `trader run` against one
    /// standalone simulator (separate accounts and stores), reported from
    /// their stores.
    #[arg(long)]
    pub(crate) live: bool,
    /// --live: how long both traders run, in real seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) duration_secs: u64,
    /// --live: the simulator's speed (simulated seconds per real second).
    #[arg(long, default_value_t = 3600.0)]
    pub(crate) speed: f64,
    /// --live: the simulator's start, RFC 3339 (default: 30 days before the
    /// end of the recorded set).
    #[arg(long)]
    pub(crate) start: Option<String>,
    /// --live: start nothing; report the newest run of each profile from
    /// this shared store (a postgres:// URL: traders on other hosts), or a
    /// SQLite file both wrote to.
    #[arg(long, requires = "live", value_parser = trader_config::parse_store_arg)]
    pub(crate) store: Option<trader_core::StoreLocation>,
}

/// The checks of `trader run` for both profiles (the profile against its
/// ensemble, the budget): each backtest alone in its process, or with
/// `--live` both traders at once, each counted as a co-tenant of the other.
/// Returns each one's predicted RSS; `None` when refused (the table printed).
fn admit_both(
    a: &CompareArgs,
    config_dir: &Path,
    profiles: [&String; 2],
) -> anyhow::Result<Option<[u64; 2]>> {
    let command = if a.live { "compare --live" } else { "compare" };
    let resolved =
        |p: &str| trader_budget::resolve(p, None, &trader_budget::WhatIf::default(), config_dir);
    let (inputs_a, mut inputs_b) = (resolved(profiles[0])?, resolved(profiles[1])?);
    let first = match admit(command, inputs_a)? {
        Gate::Fits(admitted) => admitted,
        Gate::Refused => return Ok(None),
    };
    if a.live {
        inputs_b
            .tenants
            .push(live_cotenant(profiles[0], &first.report));
    }
    let second = match admit(command, inputs_b)? {
        Gate::Fits(admitted) => admitted,
        Gate::Refused => return Ok(None),
    };
    Ok(Some([
        predicted_rss(&first.report),
        predicted_rss(&second.report),
    ]))
}

pub(crate) fn run(a: &CompareArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let [pa, pb] = a.profiles.as_slice() else {
        bail!(
            "--profiles takes two profiles, e.g. full,lean (got {})",
            a.profiles.len()
        );
    };
    // Both profiles pass the checks of `trader run` before anything starts.
    let Some(predicted_rss) = admit_both(a, config_dir, [pa, pb])? else {
        return Ok(Outcome::Refused);
    };
    let stop = crate::signals::blocking_stop_on_signal()?;
    let comparison = Comparison {
        trader_exe: std::env::current_exe().context("finding the trader binary")?,
        config_dir: config_dir.to_owned(),
        profiles: [pa.clone(), pb.clone()],
        data: a.data.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        out: a.out.clone(),
        live: a.live.then(|| Live {
            duration_secs: a.duration_secs,
            speed: a.speed,
            start: a.start.clone(),
            store: a.store.clone(),
        }),
        predicted_rss,
    };
    match trader_compare::compare(&comparison, &stop)? {
        Compared::Report(md) => {
            output::print(&md);
            Ok(Outcome::Ok)
        }
        Compared::Interrupted(e) => {
            output::eprint(&format!("trader compare: {e}; no report written\n"));
            Ok(Outcome::Interrupted)
        }
    }
}
