//! `trader backtest --profile P --data DIR [--from T] [--to T] [--json]
//! [--out DIR]`: the engine of `trader run`, fed hour by hour from recorded
//! bars, trading the simulator's fill model in process (`trader_sim::PaperBroker`).
//! Deterministic: the same inputs give byte-identical JSON (no timings in it).
//!
//! The backtest itself (bars, hours, the run, the files of `--out`) is
//! `trader_session::backtest`; this module parses the flags, passes the
//! gate, builds the runtime and prints.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use trader_engine::Metrics;
use trader_session::BacktestRequest;

use crate::args::parse_time;
use crate::gate::{Gate, gate};
use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long)]
    pub(crate) profile: String,
    /// Recorded set (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// First hour decided, RFC 3339 (default: as soon as the history fits).
    #[arg(long)]
    from: Option<String>,
    /// Last hour decided, RFC 3339 (default: the last common bar).
    #[arg(long)]
    to: Option<String>,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
    /// Write metrics.json, equity.csv, decisions.csv and resources.json
    /// (peak RSS, decision latency: measurements, not deterministic) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How the first layer runs: `batched` computes its market part for a
    /// block of hours in one matmul per member group; `plain` runs every
    /// hour as `trader run` does (each hour's first layer prepared from the
    /// hour before, the first hour whole). The two differ by float rounding
    /// only.
    #[arg(long, value_enum, default_value_t = Forward::Batched)]
    forward: Forward,
    /// Hours per batched block (memory: hours x members x first-layer width
    /// x 4 bytes).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    block_hours: u32,
    /// Record the run (bars, decisions, orders, fills, equity) in this store
    /// (a SQLite file or a postgres:// URL), as `trader run` does. Default:
    /// in memory (faster; nothing kept beyond the files of --out).
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    store: Option<trader_core::StoreLocation>,
}

/// How a backtest runs the first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Forward {
    Batched,
    Plain,
}

pub(crate) fn run(a: &BacktestArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    // The checks of `trader run`, before any bar or model is loaded.
    let profile = match gate("backtest", &a.profile, None, config_dir)? {
        Gate::Fits(admitted) => admitted.inputs.profile,
        Gate::Refused => return Ok(Outcome::Refused),
    };
    let request = BacktestRequest {
        data: a.data.clone(),
        from: a
            .from
            .as_deref()
            .map(|s| parse_time("--from", s))
            .transpose()?,
        to: a.to.as_deref().map(|s| parse_time("--to", s)).transpose()?,
        block_hours: (a.forward == Forward::Batched).then_some(a.block_hours as usize),
        store: a.store.clone(),
        out: a.out.clone(),
        progress: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let metrics = runtime.block_on(trader_session::backtest::session(&profile, &request))?;
    if a.json {
        output::print_json(&metrics)?;
    } else {
        output::print(&render(&metrics));
    }
    Ok(Outcome::Ok)
}

fn render(m: &Metrics) -> String {
    format!(
        "trader backtest: profile {}, {} .. {} ({} hours)\n  \
         decisions {} ({} skipped), orders {}, fills {}\n  \
         equity {:.2} -> {:.2} USD: total {:+.2} %, annualised {:+.2} %, volatility {:.2} %\n  \
         Sharpe {:.2}, Sortino {:.2}, max drawdown {:.2} % ({} -> {})\n  \
         turnover {:.2}x, fees {:.2} USD, exposure {:.1} %\n  \
         buy and hold: {:+.2} %, max drawdown {:.2} %\n",
        m.profile,
        m.from,
        m.to,
        m.hours,
        m.decisions,
        m.skipped,
        m.orders,
        m.fills,
        m.equity_start,
        m.equity_end,
        m.total_return * 100.0,
        m.annualised_return * 100.0,
        m.annualised_volatility * 100.0,
        m.sharpe,
        m.sortino,
        m.max_drawdown * 100.0,
        m.max_drawdown_peak,
        m.max_drawdown_trough,
        m.turnover,
        m.fees_paid,
        m.exposure * 100.0,
        m.buy_and_hold_return * 100.0,
        m.buy_and_hold_max_drawdown * 100.0
    )
}
