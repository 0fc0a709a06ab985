//! The check every command that loads a profile's ensemble passes first
//! (`run`, `backtest`, `compare`): the profile against its ensemble and the
//! budget of this process next to the host's co-tenants, with the refusal
//! printed as `trader budget` prints it (exit 3). The verdict itself is
//! trader-budget's.

use std::path::Path;

use trader_budget::{BudgetInputs, Report, Verdict, WhatIf, render_text};

use crate::output;

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
    let report = inputs.report()?;
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
