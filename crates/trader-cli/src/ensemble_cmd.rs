//! `trader ensemble inspect | infer | bench`: look into an ensemble directory,
//! run it on a state vector (the parity tool for ported models), time it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use trader_core::{Aggregate, ComputeDevice, DType};
use trader_ensemble::{Decision, Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};

use crate::budget_cmd::{EnsembleRun, gate_ensemble};
use crate::{Outcome, output};

#[derive(Debug, Subcommand)]
pub(crate) enum EnsembleCommand {
    /// One row per member: dir, score, layers, parameters, bytes at the dtype.
    Inspect(InspectArgs),
    /// Run the ensemble on a state vector (a JSON array of numbers in FILE).
    Infer(InferArgs),
    /// Time decisions on a random state: median and p99 latency, peak RSS.
    Bench(BenchArgs),
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
            EnsembleCommand::Inspect(_) => None,
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
    }
}

fn open(dir: &Path) -> anyhow::Result<EnsembleCatalog> {
    Ok(EnsembleCatalog::open(dir)?)
}

fn default_top_n(catalog: &EnsembleCatalog, top_n: Option<usize>) -> usize {
    top_n.unwrap_or_else(|| catalog.len())
}

#[derive(Serialize)]
struct InspectRow {
    rank: usize,
    dir: String,
    score: f64,
    layers: String,
    parameters: u64,
    bytes: u64,
    lookback: u32,
    features: usize,
    required_history_hours: u32,
}

fn inspect(a: &InspectArgs) -> anyhow::Result<()> {
    let catalog = open(&a.dir)?;
    let members = catalog.select(default_top_n(&catalog, a.top_n))?;
    let rows: Vec<InspectRow> = members
        .iter()
        .map(|m| {
            let mut dims: Vec<String> = m
                .params
                .layers
                .iter()
                .map(|l| l.inputs.to_string())
                .collect();
            dims.push(m.params.layers.last().map_or(0, |l| l.outputs).to_string());
            InspectRow {
                rank: m.rank + 1,
                dir: m.name.clone(),
                score: m.score,
                layers: dims.join("-"),
                parameters: m.parameter_count(),
                bytes: m.parameter_count() * a.dtype.size_in_bytes(),
                lookback: m.params.lookback,
                features: m.params.features.len(),
                required_history_hours: m.params.required_history_hours(),
            }
        })
        .collect();
    let parameters: u64 = rows.iter().map(|r| r.parameters).sum();
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
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
    let values: Vec<f64> = serde_json::from_str(&text).with_context(|| {
        format!(
            "state file {} must hold a JSON array of numbers",
            path.display()
        )
    })?;
    Ok(values.into_iter().map(|v| v as f32).collect())
}

fn infer(a: &InferArgs, config_dir: &Path) -> anyhow::Result<Outcome> {
    let state = read_state(&a.state)?;
    let Some(ensemble) = load(&a.run, "infer", config_dir)? else {
        return Ok(Outcome::Refused);
    };
    if ensemble.specs().len() != 1 {
        bail!(
            "the selected members read {} different inputs (lookback/features); `infer` takes one state vector",
            ensemble.specs().len()
        );
    }
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
    // A deterministic pseudo-random state in [-1, 1] per spec (xorshift).
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let states: Vec<Vec<f32>> = ensemble
        .specs()
        .iter()
        .map(|spec| {
            (0..spec.state_dim())
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect();
    for _ in 0..(a.iters / 10).max(1) {
        ensemble.infer(&states)?;
    }
    let mut micros = Vec::with_capacity(a.iters);
    for _ in 0..a.iters.max(1) {
        let t = Instant::now();
        let d = ensemble.infer(&states)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(d);
    }
    micros.sort_by(f64::total_cmp);
    let pick = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
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
        iters: micros.len(),
        load_ms,
        median_us: pick(0.5),
        p99_us: pick(0.99),
        mean_us: micros.iter().sum::<f64>() / micros.len() as f64,
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
