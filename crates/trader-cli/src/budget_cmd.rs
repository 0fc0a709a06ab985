//! `trader budget`: the memory table and verdict of a profile on a host, and
//! the gate of the commands that load an ensemble. The flags, the printing
//! and the outcome are here; the envelope, the inputs and the verdict are
//! trader-budget's (`resolve`, `BudgetInputs::report`, `ensemble_run_report`;
//! the running `trader train` governors: `probe_governors`,
//! `use_measured_workers`, `render_governors`).

use std::path::{Path, PathBuf};

use clap::Args;
use trader_budget::{GovernorSection, Report, Verdict, WhatIf, render_governors, render_text};
use trader_core::{ComputeDevice, DType};

use crate::gate::log_verdict;
use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct BudgetArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    profile: String,
    /// Host file (machine envelope and co-tenants); default CONFIG_DIR/host.toml.
    #[arg(long)]
    host: Option<PathBuf>,
    /// What-if: run the ensemble on this device.
    #[arg(long)]
    device: Option<ComputeDevice>,
    /// What-if: count of the "training-worker" co-tenant.
    #[arg(long)]
    workers: Option<u32>,
    /// What-if: ensemble size.
    #[arg(long)]
    top_n: Option<u32>,
    /// What-if: hours of history kept.
    #[arg(long)]
    history_hours: Option<u32>,
    /// What-if: precision of the weights.
    #[arg(long)]
    dtype: Option<DType>,
    /// Replace the declared co-tenants by what is in use on this machine now.
    #[arg(long)]
    measure: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The inputs of a budget, resolved from files, probes and flags.
pub(crate) use trader_budget::BudgetInputs;

impl BudgetArgs {
    /// The what-if flags, for the library.
    fn what_if(&self) -> WhatIf {
        WhatIf {
            device: self.device,
            workers: self.workers,
            top_n: self.top_n,
            history_hours: self.history_hours,
            dtype: self.dtype,
            measure: self.measure,
        }
    }
}

/// Reads the profile, host and ensemble headers and applies the what-if flags
/// ([`trader_budget::resolve`]).
pub(crate) fn resolve(args: &BudgetArgs, config_dir: &Path) -> anyhow::Result<BudgetInputs> {
    Ok(trader_budget::resolve(
        &args.profile,
        args.host.as_deref(),
        &args.what_if(),
        config_dir,
    )?)
}

/// Evaluates the budget and, when refused, its fixes.
pub(crate) fn budget_report(inputs: &BudgetInputs) -> anyhow::Result<Report> {
    Ok(inputs.report()?)
}

pub(crate) fn run(args: &BudgetArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let mut inputs = resolve(args, config_dir)?;
    // The `trader train` governors running now; without --measure (which
    // counts their workers live), the training workers are counted at a
    // governor's measured demand when one has measured it.
    let governors = trader_budget::probe_governors(Path::new("/"));
    let governor = if args.measure {
        trader_budget::use_measured_workers(&mut [], governors)
    } else {
        trader_budget::use_measured_workers(&mut inputs.tenants, governors)
    };
    let report = budget_report(&inputs)?;
    log_verdict("budget", &inputs.profile.name, &report);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            profile: &'a str,
            profile_path: &'a Path,
            #[serde(flatten)]
            report: &'a Report,
            governor: &'a GovernorSection,
        }
        output::print_json(&Out {
            profile: &inputs.profile.name,
            profile_path: &inputs.profile.path,
            report: &report,
            governor: &governor,
        })?;
    } else {
        let title = format!(
            "trader budget: profile {} ({}), device {}, dtype {}, top_n {}, history {} h",
            inputs.profile.name,
            inputs.profile.path.display(),
            report.knobs.device,
            report.knobs.dtype,
            report.knobs.top_n,
            report.knobs.history_hours
        );
        output::print(&render_text(&report, &title));
        output::print(&render_governors(&governor));
    }
    Ok(match report.verdict {
        Verdict::Fits => Outcome::Ok,
        Verdict::Refused => Outcome::Refused,
    })
}
