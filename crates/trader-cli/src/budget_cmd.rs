//! `trader budget`: the memory table and verdict of a profile on a host.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use trader_budget::{
    Envelope, GpuProbe, Knobs, Limit, Report, Tenant, TraderPlan, Verdict, evaluate, probe_gpu,
    probe_memory, probe_train_workers, render_text, suggest,
};
use trader_config::{HostConfig, MemorySpec, Profile};
use trader_core::{ComputeDevice, DType};
use trader_ensemble::{ACTIVATION_BATCH_LIVE, EnsembleCatalog, MemberSummary, ensemble_demand};

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
pub(crate) struct BudgetInputs {
    pub(crate) profile: Profile,
    pub(crate) knobs: Knobs,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) envelope: Envelope,
    pub(crate) members: Vec<MemberSummary>,
    pub(crate) catalog_len: u32,
    pub(crate) warnings: Vec<String>,
    /// The host file's `[alerts]`, when there is a host file.
    pub(crate) alerts: Option<trader_config::AlertSettings>,
}

fn default_host(config_dir: &Path) -> Option<PathBuf> {
    let p = config_dir.join("host.toml");
    p.is_file().then_some(p)
}

fn ram_limit(spec: MemorySpec, percent: f64, host_path: &str) -> anyhow::Result<Limit> {
    Ok(match spec {
        MemorySpec::Declared(size) => Limit {
            machine_total: size.0,
            source: format!("declared in {host_path}"),
            allowed_percent: percent,
        },
        MemorySpec::Auto => {
            let probe = probe_memory(Path::new("/")).context("probing this machine's memory")?;
            Limit {
                machine_total: probe.total.0,
                source: probe.source,
                allowed_percent: percent,
            }
        }
    })
}

fn vram_limit(
    spec: MemorySpec,
    percent: f64,
    host_name: &str,
    gpu: Option<&GpuProbe>,
) -> (Option<Limit>, Option<String>) {
    match (spec, gpu) {
        (MemorySpec::Declared(size), _) => (
            Some(Limit {
                machine_total: size.0,
                source: format!("declared in {host_name}"),
                allowed_percent: percent,
            }),
            None,
        ),
        (MemorySpec::Auto, Some(GpuProbe::Found { name, total, .. })) => (
            Some(Limit {
                machine_total: total.0,
                source: format!("NVML: {name}"),
                allowed_percent: percent,
            }),
            None,
        ),
        (MemorySpec::Auto, Some(GpuProbe::NotFound { reason })) => (None, Some(reason.clone())),
        (MemorySpec::Auto, None) => (None, Some("not probed".to_owned())),
    }
}

fn declared_tenants(host: Option<&HostConfig>) -> Vec<Tenant> {
    host.map(|h| {
        h.tenants
            .iter()
            .map(|t| Tenant {
                name: t.name.clone(),
                count: t.count,
                ram_each: t.ram.map_or(0, |s| s.0),
                vram_each: t.vram.map_or(0, |s| s.0),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// `--measure`: what is in use now replaces the declared co-tenants (VRAM stays
/// declared when no GPU is found).
fn measured_tenants(
    declared: &[Tenant],
    gpu: Option<&GpuProbe>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Tenant>> {
    let probe = probe_memory(Path::new("/")).context("measuring memory in use")?;
    let ram_used = probe.mem_total.0.saturating_sub(probe.available.0);
    let measured_vram = match gpu {
        Some(GpuProbe::Found { used, .. }) => Some(used.0),
        _ => None,
    };
    // Running `trader train` workers are a tenant kind of their own.
    let workers = probe_train_workers(Path::new("/"));
    let worker_ram: u64 = workers.iter().map(|w| w.rss.0).sum();
    let mut measured = Vec::new();
    if !workers.is_empty() {
        measured.push(Tenant {
            name: "trader train workers (measured live)".to_owned(),
            count: workers.len() as u32,
            ram_each: worker_ram / workers.len() as u64,
            vram_each: 0,
        });
    }
    measured.push(Tenant {
        name: "in use now (measured)".to_owned(),
        count: 1,
        ram_each: ram_used.saturating_sub(worker_ram),
        vram_each: measured_vram.unwrap_or(0),
    });
    if measured_vram.is_none() {
        warnings.push("--measure: no GPU found, VRAM co-tenants as declared".to_owned());
        measured.extend(declared.iter().filter(|t| t.vram_each > 0).map(|t| Tenant {
            ram_each: 0,
            ..t.clone()
        }));
    }
    Ok(measured)
}

impl BudgetArgs {
    /// The plain check of `trader run`: the profile as written, the host file.
    pub(crate) fn for_run(profile: &str, host: Option<PathBuf>) -> Self {
        BudgetArgs {
            profile: profile.to_owned(),
            host,
            device: None,
            workers: None,
            top_n: None,
            history_hours: None,
            dtype: None,
            measure: false,
            json: false,
        }
    }
}

/// The machine side of a budget: its envelope, its co-tenants, the host
/// file's alerts, and what was assumed.
struct HostBudget {
    envelope: Envelope,
    tenants: Vec<Tenant>,
    warnings: Vec<String>,
    alerts: Option<trader_config::AlertSettings>,
}

/// Reads the host file (`host`, else CONFIG_DIR/host.toml, else this
/// machine probed with no co-tenants) and probes what it leaves to probing.
fn resolve_host(
    host: Option<PathBuf>,
    config_dir: &Path,
    measure: bool,
) -> anyhow::Result<HostBudget> {
    let host = match host.or_else(|| default_host(config_dir)) {
        Some(path) => Some(HostConfig::from_file(&path)?),
        None => None,
    };
    let host_name = host.as_ref().map_or_else(
        || "(no host file)".to_owned(),
        |h| h.path.display().to_string(),
    );
    let (ram_spec, vram_spec, ram_pct, vram_pct) = host
        .as_ref()
        .map_or((MemorySpec::Auto, MemorySpec::Auto, 90.0, 85.0), |h| {
            (h.ram, h.vram, h.limits.ram_percent, h.limits.vram_percent)
        });
    let mut warnings = Vec::new();
    if host.is_none() {
        warnings.push(format!(
            "no host file ({}/host.toml missing, no --host): probing this machine, no co-tenants, limits RAM 90 % / VRAM 85 %",
            config_dir.display()
        ));
    }
    let ram = ram_limit(ram_spec, ram_pct, &host_name)?;
    let gpu = (vram_spec == MemorySpec::Auto || measure).then(probe_gpu);
    let (vram, vram_unknown_reason) = vram_limit(vram_spec, vram_pct, &host_name, gpu.as_ref());
    let declared = declared_tenants(host.as_ref());
    let tenants = if measure {
        measured_tenants(&declared, gpu.as_ref(), &mut warnings)?
    } else {
        let running = probe_train_workers(Path::new("/"));
        if !running.is_empty() {
            let each = running.iter().map(|w| w.rss.0).sum::<u64>() / running.len() as u64;
            warnings.push(format!(
                "{} trader train worker(s) running now ({:.1} MB each); the host file's {:?} tenant is what this budget counts (--measure counts them live)",
                running.len(),
                each as f64 / 1e6,
                trader_budget::WORKER_TENANT
            ));
        }
        declared
    };
    Ok(HostBudget {
        envelope: Envelope {
            ram,
            vram,
            vram_unknown_reason,
        },
        tenants,
        warnings,
        alerts: host.as_ref().map(|h| h.alerts),
    })
}

/// Reads the profile, host and ensemble headers and applies the what-if flags.
pub(crate) fn resolve(args: &BudgetArgs, config_dir: &Path) -> anyhow::Result<BudgetInputs> {
    let profile = Profile::load(&args.profile, config_dir)?;
    let HostBudget {
        envelope,
        tenants,
        warnings,
        alerts,
    } = resolve_host(args.host.clone(), config_dir, args.measure)?;
    if args.workers.is_some()
        && !tenants
            .iter()
            .any(|t| t.name == trader_budget::WORKER_TENANT)
    {
        bail!(
            "--workers needs a co-tenant named {:?} in the host file{}",
            trader_budget::WORKER_TENANT,
            if args.measure {
                " (and not --measure)"
            } else {
                ""
            }
        );
    }

    let knobs = Knobs {
        workers: args.workers,
        top_n: args.top_n.unwrap_or(profile.top_n),
        history_hours: args.history_hours.unwrap_or(profile.history_hours),
        dtype: args.dtype.unwrap_or(profile.dtype),
        device: args.device.unwrap_or(profile.device),
    };
    knobs
        .check()
        .context("checking the profile and the what-if flags")?;
    let catalog = EnsembleCatalog::open(&profile.ensemble_dir)
        .with_context(|| format!("reading the ensemble of profile {}", profile.path.display()))?;
    let members = catalog
        .select(knobs.top_n as usize)
        .with_context(|| format!("reading the ensemble of profile {}", profile.path.display()))?;
    check_members_fit_profile(&profile, &members, knobs.history_hours)?;
    Ok(BudgetInputs {
        alerts,
        catalog_len: catalog.len() as u32,
        profile,
        knobs,
        tenants,
        envelope,
        members,
        warnings,
    })
}

/// The profile must trade every symbol a member trades and keep enough history
/// for every member.
fn check_members_fit_profile(
    profile: &Profile,
    members: &[MemberSummary],
    history_hours: u32,
) -> anyhow::Result<()> {
    for m in members {
        if let Some(s) = m
            .params
            .symbols
            .iter()
            .find(|s| !profile.symbols.contains(s))
        {
            bail!(
                "member {} trades {s}, which profile {} does not list in `symbols`",
                m.dir.display(),
                profile.path.display()
            );
        }
        let need = m.params.required_history_hours();
        if history_hours < need {
            bail!(
                "history_hours = {history_hours} is shorter than the {need} h member {} needs (lookback {} + longest feature window - 1)",
                m.dir.display(),
                m.params.lookback
            );
        }
    }
    Ok(())
}

/// The process the budgeter is told about, besides the knobs.
struct Demand<'a> {
    /// The members read (at least `knobs.top_n` of them).
    members: &'a [MemberSummary],
    /// Members in the ensemble.
    catalog_len: u32,
    symbols: u32,
    threads: u32,
}

/// Evaluates a budget and, when refused, its fixes.
fn evaluate_demand(
    demand: &Demand<'_>,
    tenants: &[Tenant],
    envelope: &Envelope,
    warnings: &[String],
    knobs: Knobs,
) -> anyhow::Result<Report> {
    let members = demand.members;
    let ensemble = |top_n: u32, dtype: DType, device: ComputeDevice| {
        let n = top_n as usize;
        if n > members.len() {
            return Err(format!(
                "top_n {n} is more than the {} members read",
                members.len()
            ));
        }
        Ok(ensemble_demand(
            &members[..n],
            dtype,
            device,
            ACTIVATION_BATCH_LIVE,
        ))
    };
    let plan = TraderPlan {
        symbols: demand.symbols,
        threads: demand.threads,
        min_history_hours: members
            .iter()
            .map(|m| m.params.required_history_hours())
            .max()
            .unwrap_or(1),
        max_top_n: demand.catalog_len.min(members.len() as u32),
        ensemble: &ensemble,
    };
    let mut report = evaluate(&plan, tenants, envelope, knobs)?;
    report.warnings.splice(0..0, warnings.iter().cloned());
    if report.verdict == Verdict::Refused {
        report.fixes = suggest(&plan, tenants, envelope, knobs)?;
    }
    Ok(report)
}

/// Evaluates the budget and, when refused, its fixes.
pub(crate) fn budget_report(inputs: &BudgetInputs) -> anyhow::Result<Report> {
    evaluate_demand(
        &Demand {
            members: &inputs.members,
            catalog_len: inputs.catalog_len,
            symbols: inputs.profile.symbols.len() as u32,
            threads: inputs.profile.threads,
        },
        &inputs.tenants,
        &inputs.envelope,
        &inputs.warnings,
        inputs.knobs,
    )
}

/// The budget verdict, logged once per process as one event with its numbers.
fn log_verdict(command: &str, subject: &str, report: &Report) {
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
    host: Option<PathBuf>,
    config_dir: &Path,
) -> anyhow::Result<Gate> {
    let inputs = resolve(&BudgetArgs::for_run(profile, host), config_dir)?;
    admit(command, inputs)
}

/// [`gate`] of inputs already resolved (e.g. with an extra co-tenant).
pub(crate) fn admit(command: &str, inputs: BudgetInputs) -> anyhow::Result<Gate> {
    let report = budget_report(&inputs)?;
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
    let symbols: std::collections::BTreeSet<_> =
        members.iter().flat_map(|m| &m.params.symbols).collect();
    let knobs = Knobs {
        workers: None,
        top_n: members.len() as u32,
        history_hours: members
            .iter()
            .map(|m| m.params.required_history_hours())
            .max()
            .unwrap_or(1),
        dtype: run.dtype,
        device: run.device,
    };
    let mut report = evaluate_demand(
        &Demand {
            members: &members,
            catalog_len: run.catalog.len() as u32,
            symbols: symbols.len() as u32,
            threads: run.threads,
        },
        &host.tenants,
        &host.envelope,
        &host.warnings,
        knobs,
    )?;
    log_verdict(command, &run.dir.display().to_string(), &report);
    if report.verdict == Verdict::Fits {
        return Ok(Outcome::Ok);
    }
    report.fixes.retain(|f| {
        ["--top-n ", "--dtype ", "--device "]
            .iter()
            .any(|flag| f.flag.starts_with(flag))
    });
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

pub(crate) fn run(args: &BudgetArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let inputs = resolve(args, config_dir)?;
    let report = budget_report(&inputs)?;
    log_verdict("budget", &inputs.profile.name, &report);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            profile: &'a str,
            profile_path: &'a Path,
            #[serde(flatten)]
            report: &'a Report,
        }
        output::print_json(&Out {
            profile: &inputs.profile.name,
            profile_path: &inputs.profile.path,
            report: &report,
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
    }
    Ok(match report.verdict {
        Verdict::Fits => Outcome::Ok,
        Verdict::Refused => Outcome::Refused,
    })
}
