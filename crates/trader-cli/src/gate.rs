//! The check every command that loads a profile's ensemble passes first
//! (`run`, `backtest`, `compare`): the profile against its ensemble and the
//! budget of this process next to the host's co-tenants, with the refusal
//! printed as `trader budget` prints it (exit 3). The verdict itself is
//! trader-budget's.

use std::path::Path;

use trader_budget::{
    BudgetInputs, Report, Verdict, WhatIf, ensemble_run_report, render_text, resolve_host,
};
use trader_core::{ComputeDevice, DType};
use trader_ensemble::EnsembleCatalog;

use crate::{Outcome, output};

/// The budget verdict, logged once per process as one event with its numbers.
pub(crate) fn log_verdict(command: &str, subject: &str, report: &Report) {
    tracing::info!(
        command,
        subject,
        verdict = ?report.verdict,
        device = %report.knobs.device,
        dtype = %report.knobs.dtype,
        top_n = report.knobs.top_n,
        history_hours = report.knobs.history_hours,
        ram_total = report.ram.total,
        ram_allowed = report.ram.allowed,
        vram_total = report.vram.total,
        vram_allowed = report.vram.allowed,
        "budget"
    );
}

/// What [`gate`] decided.
pub(crate) enum Gate {
    /// The profile fits: what was read and the verdict.
    Fits(Box<Admitted>),
    /// Refused: the report is printed; the command ends with
    /// [`Outcome::Refused`] (exit 3) before any model is loaded.
    Refused,
}

/// A profile that passed [`gate`].
pub(crate) struct Admitted {
    pub(crate) inputs: BudgetInputs,
    pub(crate) report: Report,
}

/// The check of every command that loads a profile's ensemble (`run`,
/// `backtest`, `compare`), before it loads anything: the profile against its
/// ensemble (symbols, history long enough for every member: an error) and
/// the budget of this process next to the host's co-tenants (refused: the
/// table on stdout and [`Gate::Refused`]).
pub(crate) fn gate(
    command: &str,
    profile: &str,
    host: Option<&Path>,
    config_dir: &Path,
) -> anyhow::Result<Gate> {
    let inputs = trader_budget::resolve(profile, host, &WhatIf::default(), config_dir)?;
    admit(command, inputs)
}

/// [`gate`] of inputs already resolved (e.g. with an extra co-tenant).
pub(crate) fn admit(command: &str, inputs: BudgetInputs) -> anyhow::Result<Gate> {
    let mut report = inputs.report()?;
    // A backtest (and each profile of a comparison) runs the backtest's own
    // terms, not the run's: a batched projection can need far more.
    if matches!(command, "backtest" | "compare")
        && let Some(reason) = report.backtest_refusal()
    {
        report.reasons.push(reason);
        report.verdict = Verdict::Refused;
    }
    log_verdict(command, &inputs.profile.name, &report);
    if report.verdict == Verdict::Refused {
        let title = format!(
            "trader {command}: profile {} refused by the budget ({})",
            inputs.profile.name,
            inputs.profile.path.display()
        );
        output::print(&render_text(&report, &title));
        return Ok(Gate::Refused);
    }
    Ok(Gate::Fits(Box::new(Admitted { inputs, report })))
}

/// An ensemble directory run on its own (`trader ensemble infer | bench`):
/// no profile, so no history or trading rules to check.
pub(crate) struct EnsembleRun<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) catalog: &'a EnsembleCatalog,
    pub(crate) top_n: usize,
    pub(crate) dtype: DType,
    pub(crate) device: ComputeDevice,
    pub(crate) threads: u32,
}

/// [`gate`] of an ensemble run without a profile: its members' demand at
/// this dtype and device (plus the runtime's fixed terms, as for a trader
/// holding the shortest history the members need) next to the co-tenants of
/// CONFIG_DIR/host.toml, or this machine alone without a host file.
/// Refused: the table on stdout (fixes limited to this command's flags)
/// and [`Outcome::Refused`].
pub(crate) fn gate_ensemble(
    command: &str,
    run: &EnsembleRun<'_>,
    config_dir: &Path,
) -> anyhow::Result<Outcome> {
    // A build without CUDA says so itself; the budget would only say that
    // the GPU's memory is unknown.
    if !cfg!(feature = "cuda") {
        trader_ensemble::candle_device(run.device)?;
    }
    let members = run.catalog.select(run.top_n)?;
    let host = resolve_host(None, config_dir, false)?;
    let report = ensemble_run_report(
        &members,
        run.catalog.len(),
        run.dtype,
        run.device,
        run.threads,
        &host,
    )?;
    log_verdict(command, &run.dir.display().to_string(), &report);
    if report.verdict == Verdict::Fits {
        return Ok(Outcome::Ok);
    }
    let title = format!(
        "trader ensemble {command}: {} ({} members, {}, {}) refused by the budget",
        run.dir.display(),
        members.len(),
        run.dtype,
        run.device
    );
    output::print(&render_text(&report, &title));
    Ok(Outcome::Refused)
}
