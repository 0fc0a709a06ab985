//! The trader side of a budget: a profile and its ensemble's members, the
//! what-if overrides, the check that the profile can run its members, and
//! the evaluation of the whole (with fixes when refused).

use std::collections::BTreeSet;
use std::path::Path;

use trader_config::{AlertSettings, Profile, ReloadMode};
use trader_core::DemandTerm;
use trader_core::{ComputeDevice, DType};
use trader_ensemble::{
    ACTIVATION_BATCH_LIVE, EnsembleCatalog, MemberMisfit, MemberSummary, check_members_fit,
    ensemble_demand, swap_load_bytes,
};

use crate::{
    BudgetError, Envelope, HostBudget, Knobs, Report, Tenant, TraderPlan, Verdict, WORKER_TENANT,
    backtest_budget, evaluate, resolve_host, suggest,
};

/// What-if overrides of a profile's knobs and of how co-tenants are counted
/// (`trader budget`'s flags); the default is the profile as written with the
/// host file's co-tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WhatIf {
    /// Run the ensemble on this device.
    pub device: Option<ComputeDevice>,
    /// Count of the [`WORKER_TENANT`] co-tenant.
    pub workers: Option<u32>,
    /// Ensemble size.
    pub top_n: Option<u32>,
    /// Hours of history kept.
    pub history_hours: Option<u32>,
    /// Precision of the weights.
    pub dtype: Option<DType>,
    /// Replace the declared co-tenants by what is in use now.
    pub measure: bool,
}

impl WhatIf {
    /// The knobs of `profile` with these overrides.
    #[must_use]
    pub fn knobs(&self, profile: &Profile) -> Knobs {
        Knobs {
            workers: self.workers,
            top_n: self.top_n.unwrap_or(profile.top_n),
            history_hours: self.history_hours.unwrap_or(profile.history_hours),
            dtype: self.dtype.unwrap_or(profile.dtype),
            device: self.device.unwrap_or(profile.device),
        }
    }
}

/// The inputs of a budget, resolved from files, probes and what-if flags.
pub struct BudgetInputs {
    pub profile: Profile,
    pub knobs: Knobs,
    pub tenants: Vec<Tenant>,
    pub envelope: Envelope,
    /// The members read: the best `knobs.top_n` of the ensemble.
    pub members: Vec<MemberSummary>,
    /// Members in the ensemble.
    pub catalog_len: u32,
    pub warnings: Vec<String>,
    /// The host file's `[alerts]`, when there is a host file.
    pub alerts: Option<AlertSettings>,
}

/// Reads the profile (a name under `config_dir` or a path), the host file
/// (see [`resolve_host`]) and the ensemble's headers, applies `what_if`,
/// and checks the knobs' ranges and the profile against its members
/// ([`check_members_fit_profile`]). Loads no model.
///
/// # Errors
/// An unreadable or invalid profile, host file or ensemble; `workers`
/// overridden without a [`WORKER_TENANT`] co-tenant; a knob out of range;
/// `top_n` above the ensemble's size; a profile that cannot run its members.
pub fn resolve(
    profile: &str,
    host: Option<&Path>,
    what_if: &WhatIf,
    config_dir: &Path,
) -> Result<BudgetInputs, BudgetError> {
    let profile = Profile::load(profile, config_dir)?;
    let HostBudget {
        envelope,
        tenants,
        warnings,
        alerts,
    } = resolve_host(host, config_dir, what_if.measure)?;
    if what_if.workers.is_some() && !tenants.iter().any(|t| t.name == WORKER_TENANT) {
        return Err(BudgetError::NoWorkerTenant {
            tenant: WORKER_TENANT,
            measured: what_if.measure,
        });
    }
    let knobs = what_if.knobs(&profile);
    knobs
        .check()
        .map_err(|e| e.during("checking the profile and the what-if flags"))?;
    let ensemble_error = |source| BudgetError::Ensemble {
        profile: profile.path.clone(),
        source,
    };
    let catalog = EnsembleCatalog::open(&profile.ensemble_dir).map_err(ensemble_error)?;
    let members = catalog
        .select(knobs.top_n as usize)
        .map_err(ensemble_error)?;
    check_members_fit_profile(&profile, &members, knobs.history_hours)?;
    Ok(BudgetInputs {
        alerts,
        catalog_len: count(catalog.len()),
        profile,
        knobs,
        tenants,
        envelope,
        members,
        warnings,
    })
}

/// The profile must trade every symbol a member trades and keep at least
/// `history_hours` >= what every member needs (its lookback + longest
/// feature window - 1).
///
/// # Errors
/// [`BudgetError::SymbolNotInProfile`] or [`BudgetError::HistoryTooShort`]
/// for the first member that does not fit.
pub fn check_members_fit_profile(
    profile: &Profile,
    members: &[MemberSummary],
    history_hours: u32,
) -> Result<(), BudgetError> {
    check_members_fit(members, &profile.symbols, history_hours).map_err(|misfit| match misfit {
        MemberMisfit::Symbol { member, symbol } => BudgetError::SymbolNotInProfile {
            member,
            symbol,
            profile: profile.path.clone(),
        },
        MemberMisfit::History {
            member,
            need,
            lookback,
        } => BudgetError::HistoryTooShort {
            history_hours,
            need,
            member,
            lookback,
        },
    })
}

/// The longest history any of `members` needs (1 without members).
#[must_use]
pub fn members_history_hours(members: &[MemberSummary]) -> u32 {
    members
        .iter()
        .map(|m| m.params.required_history_hours())
        .max()
        .unwrap_or(1)
}

/// A count as `u32`, saturating.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The process the budgeter is told about, besides the knobs.
struct Demand<'a> {
    /// The members read (at least `knobs.top_n` of them).
    members: &'a [MemberSummary],
    /// Members in the ensemble.
    catalog_len: u32,
    symbols: u32,
    threads: u32,
    /// Terms added to the ensemble's own (a swap's transient).
    extra: &'a [DemandTerm],
    /// Add the profile's backtest budget to the report.
    backtest: bool,
}

/// What a backtest's batched first layer holds at its peak for `members` at
/// `dtype` over `rows` hours (`Ensemble::project_market`): each member's
/// first-layer market columns copied out (out x market inputs), their output
/// (rows x out), both at `dtype`, and per distinct member input the block's
/// market parts (rows x market inputs: the f32 vector grown by doubling, its
/// prepared f32 copy and the tensor at `dtype`). An upper bound where
/// several groups run one after the other (each group's copy is freed
/// before the next).
fn projection_bytes(members: &[MemberSummary], dtype: DType, rows: u64) -> u64 {
    let b = dtype.size_in_bytes();
    let market_dim = |m: &MemberSummary| {
        (m.params.state_dim() as u64).saturating_sub(1 + m.params.symbols.len() as u64)
    };
    let mut bytes = 0_u64;
    let mut inputs = Vec::new();
    for m in members {
        let out = m.params.layers.first().map_or(0, |l| l.outputs as u64);
        let dm = market_dim(m);
        bytes = bytes.saturating_add(out * dm * b + rows * out * b);
        let spec = (&m.params.symbols, m.params.lookback, &m.params.features);
        if !inputs.contains(&spec) {
            inputs.push(spec);
            bytes = bytes.saturating_add(rows * dm * (4 * 2 + 4 + b));
        }
    }
    bytes
}

/// Evaluates a budget (the `warnings` first among the report's) and, when
/// refused, its fixes.
fn evaluate_demand(
    demand: &Demand<'_>,
    tenants: &[Tenant],
    envelope: &Envelope,
    warnings: &[String],
    knobs: Knobs,
) -> Result<Report, BudgetError> {
    let members = demand.members;
    let ensemble = |top_n: u32, dtype: DType, device: ComputeDevice| {
        let n = top_n as usize;
        if n > members.len() {
            return Err(format!(
                "top_n {n} is more than the {} members read",
                members.len()
            ));
        }
        let mut terms = ensemble_demand(&members[..n], dtype, device, ACTIVATION_BATCH_LIVE);
        terms.extend(demand.extra.iter().cloned());
        Ok(terms)
    };
    let projection = |top_n: u32, dtype: DType, rows: u64| {
        projection_bytes(&members[..(top_n as usize).min(members.len())], dtype, rows)
    };
    let plan = TraderPlan {
        symbols: demand.symbols,
        threads: demand.threads,
        min_history_hours: members_history_hours(members),
        max_top_n: demand.catalog_len.min(count(members.len())),
        ensemble: &ensemble,
        projection: Some(&projection),
    };
    let mut report = evaluate(&plan, tenants, envelope, knobs)?;
    if demand.backtest {
        report.backtest = Some(backtest_budget(&plan, &knobs)?);
    }
    report.warnings.splice(0..0, warnings.iter().cloned());
    if report.verdict == Verdict::Refused {
        report.fixes = suggest(&plan, tenants, envelope, knobs)?;
    }
    Ok(report)
}

impl BudgetInputs {
    /// The swap transient of a same-sized ensemble ([`swap_transient`]),
    /// when the profile follows its directory (`reload = "on-change"`):
    /// what a swap adds to the peak, and what a trader that swapped may
    /// keep (its own-RSS alert counts it).
    #[must_use]
    pub fn swap_transient_term(&self) -> Option<DemandTerm> {
        if self.profile.reload.mode != ReloadMode::OnChange {
            return None;
        }
        let n = (self.knobs.top_n as usize).min(self.members.len());
        let members = &self.members[..n];
        let weights = ensemble_demand(
            members,
            self.knobs.dtype,
            self.knobs.device,
            ACTIVATION_BATCH_LIVE,
        )
        .iter()
        .find(|t| t.component == "weights")
        .map_or(0, |t| t.ram_bytes + t.vram_bytes);
        Some(swap_transient(
            weights,
            members,
            self.knobs.dtype,
            self.knobs.device,
        ))
    }

    /// Evaluates the budget of these inputs and, when refused, its fixes.
    ///
    /// # Errors
    /// [`BudgetError::Demand`] when the demand cannot be computed.
    ///
    /// A profile that follows its directory (`reload = "on-change"`) and
    /// fits, but would not fit with the swap transient of an ensemble of
    /// the same size, gets a warning: its swaps will be refused.
    pub fn report(&self) -> Result<Report, BudgetError> {
        let demand = |extra| Demand {
            members: &self.members,
            catalog_len: self.catalog_len,
            symbols: count(self.profile.symbols.len()),
            threads: self.profile.threads,
            extra,
            backtest: extra.is_empty(),
        };
        let mut report = evaluate_demand(
            &demand(&[]),
            &self.tenants,
            &self.envelope,
            &self.warnings,
            self.knobs,
        )?;
        report.swap_transient = self.swap_transient_term();
        if report.verdict == Verdict::Fits
            && let Some(term) = report.swap_transient.clone()
        {
            let transient = [term];
            let swapping = evaluate_demand(
                &demand(&transient),
                &self.tenants,
                &self.envelope,
                &[],
                self.knobs,
            )?;
            if swapping.verdict == Verdict::Refused {
                report.warnings.push(format!(
                    "reload = \"on-change\": a swap to an ensemble of this size would be refused ({}): {}",
                    transient[0].basis,
                    swapping.reasons.join("; ")
                ));
            }
        }
        Ok(report)
    }
}

/// The budget of a running trader's swap to `members` (the best of
/// `catalog_len`), with `profile`'s knobs, next to `host`'s co-tenants as
/// they are now: the new ensemble's terms plus `transient`, what stays
/// resident while it loads (the ensemble in use, [`swap_transient`]).
/// No fixes: a refused swap keeps the ensemble in use.
///
/// # Errors
/// [`BudgetError::Demand`] when the demand cannot be computed.
pub fn swap_report(
    profile: &Profile,
    members: &[MemberSummary],
    catalog_len: usize,
    transient: DemandTerm,
    host: &HostBudget,
) -> Result<Report, BudgetError> {
    let knobs = Knobs {
        workers: None,
        top_n: count(members.len()),
        history_hours: profile.history_hours,
        dtype: profile.dtype,
        device: profile.device,
    };
    let extra = [transient];
    let mut report = evaluate_demand(
        &Demand {
            members,
            catalog_len: count(catalog_len),
            symbols: count(profile.symbols.len()),
            threads: profile.threads,
            extra: &extra,
            backtest: false,
        },
        &host.tenants,
        &host.envelope,
        &host.warnings,
        knobs,
    )?;
    report.fixes.clear();
    Ok(report)
}

/// The swap transient: while a new ensemble (`members`) loads, the one in
/// use (its `weight_bytes` on `device`) stays resident, so the hour being
/// traded never waits for a load; and the load runs on a blocking thread
/// whose heap keeps one more load's transient ([`swap_load_bytes`]: the
/// read buffers of a load in place; otherwise the largest member's file,
/// its tensors as stored and its largest tensor as f32), in RAM whatever
/// the device. Measured: BENCHMARKS.md, "Live ensemble swap".
#[must_use]
pub fn swap_transient(
    weight_bytes: u64,
    members: &[MemberSummary],
    dtype: DType,
    device: ComputeDevice,
) -> DemandTerm {
    let load = swap_load_bytes(members, dtype, device);
    let (ram, vram) = match device {
        ComputeDevice::Cpu => (weight_bytes + load, 0),
        ComputeDevice::Cuda => (load, weight_bytes),
    };
    DemandTerm::new(
        "swap transient",
        ram,
        vram,
        format!(
            "the ensemble in use ({:.1} MB), resident while the new one loads, + one load on the loading thread's heap ({:.1} MB)",
            weight_bytes as f64 / 1e6,
            load as f64 / 1e6
        ),
    )
}

/// The fixes an ensemble run without a profile can take: only its own
/// flags (`--top-n`, `--dtype`, `--device`).
pub const ENSEMBLE_RUN_FIX_FLAGS: [&str; 3] = ["--top-n ", "--dtype ", "--device "];

/// The budget of an ensemble run on its own (`trader ensemble infer |
/// bench`): `members` (the best of `catalog_len`) at `dtype` on `device`
/// with `threads` inference threads, plus the runtime's fixed terms as for a
/// trader holding the shortest history the members need over the symbols
/// they trade, next to `host`'s co-tenants. Fixes are limited to
/// [`ENSEMBLE_RUN_FIX_FLAGS`].
///
/// # Errors
/// [`BudgetError::Demand`] when the demand cannot be computed.
pub fn ensemble_run_report(
    members: &[MemberSummary],
    catalog_len: usize,
    dtype: DType,
    device: ComputeDevice,
    threads: u32,
    host: &HostBudget,
) -> Result<Report, BudgetError> {
    let symbols: BTreeSet<_> = members.iter().flat_map(|m| &m.params.symbols).collect();
    let knobs = Knobs {
        workers: None,
        top_n: count(members.len()),
        history_hours: members_history_hours(members),
        dtype,
        device,
    };
    let mut report = evaluate_demand(
        &Demand {
            members,
            catalog_len: count(catalog_len),
            symbols: count(symbols.len()),
            threads,
            extra: &[],
            backtest: false,
        },
        &host.tenants,
        &host.envelope,
        &host.warnings,
        knobs,
    )?;
    report.fixes.retain(|f| {
        ENSEMBLE_RUN_FIX_FLAGS
            .iter()
            .any(|flag| f.flag.starts_with(flag))
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{BACKTEST_BLOCK_HOURS, BACKTEST_RECORD_BYTES_PER_HOUR, BACKTEST_REPORT_HOURS};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The shipped lean profile written under `dir`, its ensemble
    /// `models/fixture-small` (10 members trading BTC, ETH and LTC, lookback
    /// 12 and a 60 h window: 71 h of history), as the CLI's tests use it.
    fn lean_profile(dir: &Path) -> String {
        let fixture = repo().join("models/fixture-small");
        let text = fs_err::read_to_string(repo().join("configs/lean.toml"))
            .unwrap()
            .replace("../models/demo", &fixture.display().to_string());
        let path = dir.join("lean.toml");
        fs_err::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// A host file with declared sizes (nothing probed) and `workers`
    /// training workers of 1 GB.
    fn host(dir: &Path, ram: &str, workers: u32) -> PathBuf {
        let path = dir.join("host.toml");
        fs_err::write(
            &path,
            format!(
                r#"
ram = "{ram}"
vram = "8GB"

[limits]
ram_percent = 90
vram_percent = 85

[alerts]
vram_percent = 85
process_rss = "1.5GB"
check_interval_secs = 300

[[tenants]]
name = "training-worker"
count = {workers}
ram = "1GB"
"#
            ),
        )
        .unwrap();
        path
    }

    fn lean(what_if: &WhatIf, ram: &str) -> Result<BudgetInputs, BudgetError> {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), ram, 9);
        resolve(&lean_profile(dir.path()), Some(&host), what_if, dir.path())
    }

    #[test]
    fn the_shipped_lean_profile_fits_a_large_machine_with_its_knobs_as_written() {
        let inputs = lean(&WhatIf::default(), "64GB").unwrap();
        assert_eq!(inputs.profile.name, "lean");
        assert_eq!((inputs.knobs.top_n, inputs.knobs.history_hours), (5, 72));
        assert_eq!(inputs.members.len(), 5);
        assert_eq!(inputs.catalog_len, 10);
        assert!(inputs.alerts.is_some());
        let report = inputs.report().unwrap();
        assert_eq!(report.verdict, Verdict::Fits);
        assert!(report.fixes.is_empty());
    }

    #[test]
    fn the_report_budgets_the_profiles_backtest_with_its_projection_and_records() {
        let inputs = lean(&WhatIf::default(), "64GB").unwrap();
        let report = inputs.report().unwrap();
        let backtest = report.backtest.unwrap();
        assert_eq!(
            (backtest.decided_hours, backtest.block_hours),
            (BACKTEST_REPORT_HOURS, BACKTEST_BLOCK_HOURS)
        );
        assert_eq!(
            backtest.ram,
            backtest.terms.iter().map(|t| t.ram_bytes).sum::<u64>()
        );
        let term = |name: &str| {
            backtest
                .terms
                .iter()
                .find(|t| t.component == name)
                .unwrap_or_else(|| panic!("{name}: {:?}", backtest.terms))
                .ram_bytes
        };
        // Five fixture members, one input spec (12 x 3 x 10 = 360 market
        // inputs, first layer 64 wide), 256 hours per block, f32: the
        // market columns (64 x 360 x 4 B each), their output (256 x 64 x
        // 4 B each) and the block's inputs once (256 x 360 x (8 + 4 + 4) B),
        // beyond the load transient.
        let projection = 5 * (64 * 360 * 4 + 256 * 64 * 4) + 256 * 360 * 16;
        assert_eq!(projection, 2_263_040);
        assert_eq!(
            term("projection"),
            projection - term("load transient"),
            "{:?}",
            backtest.terms
        );
        assert_eq!(
            term("records"),
            u64::from(BACKTEST_REPORT_HOURS) * BACKTEST_RECORD_BYTES_PER_HOUR
        );
        assert!(backtest.terms.iter().all(|t| t.component != "trading loop"));
        // Not in the run's verdict, and no swap's check computes it.
        let run: u64 = report.trader_terms.iter().map(|t| t.ram_bytes).sum();
        assert_eq!(report.ram.trader, run);
    }

    #[test]
    fn a_profile_that_fits_but_could_not_swap_is_warned_and_reload_off_is_not() {
        let inputs = lean(&WhatIf::default(), "64GB").unwrap();
        let roomy = inputs.report().unwrap();
        let transient = inputs.swap_transient_term().unwrap();
        let weights = roomy
            .trader_terms
            .iter()
            .find(|t| t.component == "weights")
            .unwrap()
            .ram_bytes;
        assert!(
            transient.ram_bytes > weights,
            "the ensemble in use and one more load"
        );
        let swap_warning = |r: &Report| r.warnings.iter().any(|w| w.contains("swap"));
        assert!(!swap_warning(&roomy), "{:?}", roomy.warnings);
        // 90 % of the machine: the profile plus half the swap's transient.
        let machine = ((roomy.ram.total + transient.ram_bytes / 2) as f64 / 0.9) as u64;
        let tight = lean(&WhatIf::default(), &format!("{machine}B"))
            .unwrap()
            .report()
            .unwrap();
        assert_eq!(tight.verdict, Verdict::Fits);
        assert!(swap_warning(&tight), "{:?}", tight.warnings);
        // The same machine, a profile that never swaps: no warning.
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), &format!("{machine}B"), 9);
        let profile = lean_profile(dir.path());
        let text = fs_err::read_to_string(&profile)
            .unwrap()
            .replace("threads = 1", "threads = 1\nreload = \"off\"");
        fs_err::write(&profile, text).unwrap();
        let inputs = resolve(&profile, Some(&host), &WhatIf::default(), dir.path()).unwrap();
        assert_eq!(inputs.profile.reload.mode, ReloadMode::Off);
        assert_eq!(inputs.swap_transient_term(), None);
        let off = inputs.report().unwrap();
        assert!(!swap_warning(&off), "{:?}", off.warnings);
    }

    #[test]
    fn what_if_overrides_the_knobs() {
        let what_if = WhatIf {
            top_n: Some(3),
            dtype: Some(DType::F16),
            workers: Some(2),
            ..WhatIf::default()
        };
        let inputs = lean(&what_if, "64GB").unwrap();
        assert_eq!(inputs.knobs.top_n, 3);
        assert_eq!(inputs.knobs.dtype, DType::F16);
        assert_eq!(inputs.knobs.workers, Some(2));
        assert_eq!(inputs.members.len(), 3);
    }

    #[test]
    fn a_refused_budget_comes_with_fixes_starting_with_fewer_workers() {
        let inputs = lean(&WhatIf::default(), "10GB").unwrap();
        let report = inputs.report().unwrap();
        assert_eq!(report.verdict, Verdict::Refused);
        assert_eq!(report.fixes[0].flag, "--workers 8");
    }

    #[test]
    fn history_shorter_than_a_member_needs_names_both_numbers() {
        let what_if = WhatIf {
            history_hours: Some(60),
            ..WhatIf::default()
        };
        let Err(err) = lean(&what_if, "64GB") else {
            panic!("60 h accepted");
        };
        assert!(matches!(
            err,
            BudgetError::HistoryTooShort {
                history_hours: 60,
                need: 71,
                lookback: 12,
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("history_hours = 60 is shorter than the 71 h")
        );
    }

    #[test]
    fn a_member_trading_a_symbol_the_profile_does_not_list_is_an_error() {
        let inputs = lean(&WhatIf::default(), "64GB").unwrap();
        let mut profile = inputs.profile;
        let dropped = profile.symbols.remove(0);
        let err = check_members_fit_profile(&profile, &inputs.members, 72).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("trades {dropped}")), "{text}");
        assert!(text.contains("does not list in `symbols`"), "{text}");
    }

    #[test]
    fn workers_without_a_worker_tenant_are_refused_as_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = host(dir.path(), "64GB", 1).with_file_name("other.toml");
        fs_err::write(
            &path,
            fs_err::read_to_string(dir.path().join("host.toml"))
                .unwrap()
                .replace("training-worker", "monitoring"),
        )
        .unwrap();
        let what_if = WhatIf {
            workers: Some(1),
            ..WhatIf::default()
        };
        let profile = lean_profile(dir.path());
        let Err(err) = resolve(&profile, Some(&path), &what_if, dir.path()) else {
            panic!("--workers accepted without a worker tenant");
        };
        assert_eq!(
            err.to_string(),
            format!("--workers needs a co-tenant named {WORKER_TENANT:?} in the host file")
        );
    }

    #[test]
    fn top_n_above_the_ensemble_names_the_profile() {
        let what_if = WhatIf {
            top_n: Some(12),
            ..WhatIf::default()
        };
        let Err(err) = lean(&what_if, "64GB") else {
            panic!("top_n 12 accepted");
        };
        assert!(
            err.to_string()
                .starts_with("reading the ensemble of profile")
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("only 10 members"), "{cause}");
    }

    #[test]
    fn an_ensemble_run_is_budgeted_at_the_members_shortest_history_with_its_own_fixes_only() {
        let inputs = lean(&WhatIf::default(), "64GB").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let host_path = host(dir.path(), "10GB", 9);
        let host = resolve_host(Some(&host_path), dir.path(), false).unwrap();
        let report = ensemble_run_report(
            &inputs.members,
            10,
            DType::F32,
            ComputeDevice::Cpu,
            1,
            &host,
        )
        .unwrap();
        assert_eq!(report.knobs.history_hours, 71);
        assert_eq!(report.knobs.top_n, 5);
        assert_eq!(report.verdict, Verdict::Refused);
        assert!(report.fixes.iter().all(|f| {
            ENSEMBLE_RUN_FIX_FLAGS
                .iter()
                .any(|flag| f.flag.starts_with(flag))
        }));
    }
}
