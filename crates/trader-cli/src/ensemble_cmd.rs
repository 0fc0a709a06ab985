//! `trader ensemble inspect | infer | bench`: look into an ensemble directory,
//! run it on a state vector (the parity tool for ported models), time it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use trader_core::{Aggregate, ComputeDevice, DType};
use trader_ensemble::{
    Decision, Ensemble, EnsembleCatalog, ForwardMode, InspectRow, Inspection, LoadOptions,
};

use crate::gate::{EnsembleRun, gate_ensemble};
use crate::{Outcome, output};

#[derive(Debug, Subcommand)]
pub(crate) enum EnsembleCommand {
    /// One row per member: dir, score, layers, parameters, bytes at the dtype.
    Inspect(InspectArgs),
    /// Run the ensemble on a state vector (a JSON array of numbers in FILE).
    Infer(InferArgs),
    /// Time decisions on a random state: median and p99 latency, peak RSS.
    Bench(BenchArgs),
    /// Write a shared search's best members (`trader train --queue`) from
    /// the database into DIR, then ensemble_params.json: a trader with
    /// reload = "on-change" on DIR follows the database's ranking.
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Ensemble directory to write (created).
    dir: PathBuf,
    /// The database of the search (postgres://).
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    queue: trader_core::StoreLocation,
    /// The search's name (`trader train --search`, default PROFILE-seedSEED).
    #[arg(long)]
    search: String,
    /// Members to write (default: the search's top_n).
    #[arg(long)]
    top_n: Option<u32>,
    /// Sync again every SECS seconds until stopped (default: once).
    #[arg(long)]
    every: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Ensemble directory (holds ensemble_params.json).
    dir: PathBuf,
    /// Best N members (default: all).
    #[arg(long)]
    top_n: Option<usize>,
    #[arg(long, default_value = "f32")]
    dtype: DType,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// Ensemble directory (holds ensemble_params.json).
    dir: PathBuf,
    /// Best N members (default: all).
    #[arg(long)]
    top_n: Option<usize>,
    #[arg(long, default_value = "f32")]
    dtype: DType,
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
    #[arg(long, default_value = "mean")]
    aggregate: Aggregate,
    /// sequential: one member after the other; stacked: one batched matmul per
    /// layer. Default: the faster one for the dtype (stacked; sequential for bf16).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Inference threads (candle's matmul pool).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Sequential,
    Stacked,
}

#[derive(Debug, Args)]
pub(crate) struct InferArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// JSON file holding the state vector as an array of numbers.
    #[arg(long)]
    state: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Timed decisions (after 10 % as many warm-up ones).
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    #[arg(long)]
    json: bool,
}

impl EnsembleCommand {
    /// Inference threads this command asks for, if it runs inference.
    pub(crate) fn threads(&self) -> Option<usize> {
        match self {
            EnsembleCommand::Inspect(_) | EnsembleCommand::Sync(_) => None,
            EnsembleCommand::Infer(a) => Some(a.run.threads),
            EnsembleCommand::Bench(a) => Some(a.run.threads),
        }
    }
}

pub(crate) fn run(cmd: &EnsembleCommand, config_dir: &Path) -> anyhow::Result<Outcome> {
    match cmd {
        EnsembleCommand::Inspect(a) => inspect(a).map(|()| Outcome::Ok),
        EnsembleCommand::Infer(a) => infer(a, config_dir),
        EnsembleCommand::Bench(a) => bench(a, config_dir),
        EnsembleCommand::Sync(a) => sync(a),
    }
}

fn sync(a: &SyncArgs) -> anyhow::Result<Outcome> {
    let mut q = crate::train_queue::HostQueue::follow(&a.queue, &a.search, &a.dir, a.top_n)?;
    let stop = crate::signals::blocking_stop_on_signal()?;
    loop {
        let present = q.materialise().map_err(anyhow::Error::from_boxed)?;
        output::print(&format!(
            "{} members of search {} in {}\n",
            present.len(),
            a.search,
            a.dir.display()
        ));
        let Some(every) = a.every else { break };
        if stop
            .sleep_until(Instant::now() + std::time::Duration::from_secs(every.max(1)))
            .is_err()
        {
            q.close();
            return Ok(Outcome::Interrupted);
        }
    }
    q.close();
    Ok(Outcome::Ok)
}

fn open(dir: &Path) -> anyhow::Result<EnsembleCatalog> {
    Ok(EnsembleCatalog::open(dir)?)
}

fn default_top_n(catalog: &EnsembleCatalog, top_n: Option<usize>) -> usize {
    top_n.unwrap_or_else(|| catalog.len())
}

fn inspect(a: &InspectArgs) -> anyhow::Result<()> {
    let catalog = open(&a.dir)?;
    let Inspection {
        rows,
        total_parameters: parameters,
        total_bytes: bytes,
    } = trader_ensemble::inspect(&catalog, default_top_n(&catalog, a.top_n), a.dtype)?;
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            dir: &'a Path,
            dtype: DType,
            members: &'a [InspectRow],
            total_parameters: u64,
            total_bytes: u64,
        }
        return output::print_json(&Out {
            dir: &a.dir,
            dtype: a.dtype,
            members: &rows,
            total_parameters: parameters,
            total_bytes: bytes,
        });
    }
    let mut text = format!(
        "{:>4}  {:<16} {:>8}  {:<22} {:>12} {:>12}  {:>8}  {:>8}\n",
        "rank", "dir", "score", "layers", "parameters", "bytes", "lookback", "needs h"
    );
    for r in &rows {
        text.push_str(&format!(
            "{:>4}  {:<16} {:>8.4}  {:<22} {:>12} {:>12}  {:>8}  {:>8}\n",
            r.rank,
            r.dir,
            r.score,
            r.layers,
            r.parameters,
            r.bytes,
            r.lookback,
            r.required_history_hours
        ));
    }
    text.push_str(&format!(
        "total: {} members, {parameters} parameters, {bytes} bytes at {}\n",
        rows.len(),
        a.dtype
    ));
    output::print(&text);
    Ok(())
}

/// Loads the ensemble after the budget check of this process (`None`:
/// refused, the table printed).
fn load(run: &RunArgs, command: &str, config_dir: &Path) -> anyhow::Result<Option<Ensemble>> {
    let catalog = open(&run.dir)?;
    let top_n = default_top_n(&catalog, run.top_n);
    let check = EnsembleRun {
        dir: &run.dir,
        catalog: &catalog,
        top_n,
        dtype: run.dtype,
        device: run.device,
        threads: u32::try_from(run.threads).unwrap_or(u32::MAX),
    };
    if let Outcome::Refused = gate_ensemble(command, &check, config_dir)? {
        return Ok(None);
    }
    let options = LoadOptions {
        top_n,
        dtype: run.dtype,
        device: run.device,
        aggregate: run.aggregate,
        mode: match run.mode {
            None => ForwardMode::default_for(run.dtype),
            Some(Mode::Sequential) => ForwardMode::Sequential,
            Some(Mode::Stacked) => ForwardMode::Stacked,
        },
    };
    Ok(Some(Ensemble::load(&catalog, options)?))
}

fn read_state(path: &Path) -> anyhow::Result<Vec<f32>> {
    let text = fs_err::read_to_string(path).context("reading the state file")?;
    trader_ensemble::parse_state(&text).with_context(|| {
        format!(
            "state file {} must hold a JSON array of numbers",
            path.display()
        )
    })
}

fn infer(a: &InferArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let state = read_state(&a.state)?;
    let Some(ensemble) = load(&a.run, "infer", config_dir)? else {
        return Ok(Outcome::Refused);
    };
    trader_ensemble::check_single_input(&ensemble)?;
    let decision = ensemble
        .infer(&[state])
        .with_context(|| format!("state file {}", a.state.display()))?;
    let names: Vec<&str> = ensemble.members().iter().map(|m| m.name.as_str()).collect();
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            symbols: Vec<&'a str>,
            names: Vec<&'a str>,
            #[serde(flatten)]
            decision: &'a Decision,
        }
        output::print_json(&Out {
            symbols: ensemble
                .symbols()
                .iter()
                .map(trader_core::Symbol::as_str)
                .collect(),
            names,
            decision: &decision,
        })?;
        return Ok(Outcome::Ok);
    }
    let mut text = format!("{:<16}", "member");
    for s in ensemble.symbols() {
        text.push_str(&format!(" {:>12}", s.as_str()));
    }
    text.push('\n');
    for (name, row) in names.iter().zip(&decision.members) {
        text.push_str(&format!("{name:<16}"));
        for v in row {
            text.push_str(&format!(" {v:>12.6}"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "{:<16}",
        format!("= {:?}", a.run.aggregate).to_lowercase()
    ));
    for v in &decision.aggregate {
        text.push_str(&format!(" {v:>12.6}"));
    }
    output::print(&text);
    Ok(Outcome::Ok)
}

fn bench(a: &BenchArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let Some(ensemble) = load(&a.run, "bench", config_dir)? else {
        return Ok(Outcome::Refused);
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let states = trader_ensemble::bench_states(ensemble.specs());
    let timings = trader_ensemble::time_decisions(&ensemble, &states, a.iters)?;
    #[derive(Serialize)]
    struct Out {
        members: usize,
        parameters: u64,
        dtype: DType,
        mode: String,
        threads: usize,
        iters: usize,
        load_ms: f64,
        median_us: f64,
        p99_us: f64,
        mean_us: f64,
        peak_rss_bytes: Option<u64>,
    }
    let out = Out {
        members: ensemble.members().len(),
        parameters: ensemble.members().iter().map(|m| m.parameter_count).sum(),
        dtype: a.run.dtype,
        mode: format!("{:?}", ensemble.options().mode).to_lowercase(),
        threads: a.run.threads,
        iters: timings.len(),
        load_ms,
        median_us: timings.median_us(),
        p99_us: timings.p99_us(),
        mean_us: timings.mean_us(),
        peak_rss_bytes: Some(trader_budget::own_memory().peak).filter(|b| *b > 0),
    };
    if a.json {
        output::print_json(&out)?;
        return Ok(Outcome::Ok);
    }
    output::print(&format!(
        "{} members ({} params, {}), {}, {} thread(s): median {:.1} us, p99 {:.1} us over {} decisions; load {:.1} ms; peak RSS {} kB",
        out.members,
        out.parameters,
        out.dtype,
        out.mode,
        out.threads,
        out.median_us,
        out.p99_us,
        out.iters,
        out.load_ms,
        out.peak_rss_bytes.unwrap_or(0) / 1024
    ));
    Ok(Outcome::Ok)
}
