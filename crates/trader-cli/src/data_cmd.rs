//! `trader data import | features`: recorded CSVs into the store, and the
//! feature values the trader would see at a bar.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use trader_core::{Bar, Clock, FeatureName, StoreLocation, Symbol, SystemClock, format_time};
use trader_recorded::{read_recorded_csv, recorded_files};
use trader_store::Store;

use crate::{Outcome, output};

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Load a recorded set (one CSV per symbol: BTCUSD.csv -> BTC/USD) into a store.
    Import(ImportArgs),
    /// Every catalog feature of one symbol at one bar time, from a store.
    Features(FeaturesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Directory of CSVs with header timestamp,open,high,low,close,volume.
    dir: PathBuf,
    /// SQLite file (created if missing) or postgres:// URL.
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    store: StoreLocation,
    /// Keep only this many hours per symbol (the newest); default: keep all.
    #[arg(long)]
    history_hours: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    /// SQLite file or postgres:// URL.
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    store: StoreLocation,
    #[arg(long)]
    symbol: Symbol,
    /// Bar start time, RFC 3339 (2018-08-10T12:00:00Z).
    #[arg(long)]
    at: String,
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: &DataCommand) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cmd {
            DataCommand::Import(a) => import(a).await,
            DataCommand::Features(a) => features(a).await.map(|()| Outcome::Ok),
        }
    })
}

#[derive(Debug, Serialize)]
struct ImportRow {
    symbol: String,
    file: String,
    rows: usize,
    inserted: u64,
    replaced: u64,
    unchanged: u64,
    pruned: u64,
    held: u64,
}

async fn import(a: &ImportArgs) -> anyhow::Result<Outcome> {
    let stop = crate::signals::stop_flag();
    let files = recorded_files(&a.dir)?;
    let now = SystemClock.now();
    // Every file read and checked before the store is touched.
    let parsed: Vec<(Symbol, PathBuf, Vec<Bar>)> = files
        .into_iter()
        .map(|(s, p)| read_recorded_csv(&p, &s, now).map(|bars| (s, p, bars)))
        .collect::<Result<_, _>>()?;
    let store = Store::open(&a.store, a.history_hours).await?;
    let total: usize = parsed.iter().map(|(_, _, b)| b.len()).sum();
    let progress = indicatif::ProgressBar::new(total as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg:8} [{bar:40}] {pos}/{len} bars ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let report = store
        .import_recorded(&parsed, &SystemClock, &stop, |symbol, n| {
            if n == 0 {
                progress.set_message(symbol.to_string());
            }
            progress.inc(n);
        })
        .await?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    store.close().await;
    if report.stopped {
        output::eprint(&format!(
            "trader data import: stopped by a signal at a batch boundary; {} rows written to {} in whole batches, the rest not; the same import again completes it\n",
            report.written(),
            a.store
        ));
        return Ok(Outcome::Interrupted);
    }
    let rows: Vec<ImportRow> = report
        .symbols
        .iter()
        .map(|r| ImportRow {
            symbol: r.symbol.to_string(),
            file: r.file.display().to_string(),
            rows: r.rows,
            inserted: r.inserted,
            replaced: r.replaced,
            unchanged: r.unchanged,
            pruned: r.pruned,
            held: r.held,
        })
        .collect();
    tracing::info!(store = %a.store, bars = total, seconds, "import done");
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            store: String,
            history_hours: Option<u32>,
            seconds: f64,
            bars_per_second: f64,
            symbols: &'a [ImportRow],
        }
        output::print_json(&Out {
            store: a.store.to_string(),
            history_hours: a.history_hours,
            seconds,
            bars_per_second: total as f64 / seconds,
            symbols: &rows,
        })?;
        return Ok(Outcome::Ok);
    }
    let mut text = String::new();
    for r in &rows {
        text.push_str(&format!(
            "{:<9} {:>6} rows: {} new, {} replaced, {} unchanged, {} pruned; {} held\n",
            r.symbol, r.rows, r.inserted, r.replaced, r.unchanged, r.pruned, r.held
        ));
    }
    text.push_str(&format!(
        "{total} bars in {seconds:.2} s ({:.0} bars/s) into {}",
        total as f64 / seconds,
        a.store
    ));
    output::print(&text);
    Ok(Outcome::Ok)
}

async fn features(a: &FeaturesArgs) -> anyhow::Result<()> {
    let at = crate::args::parse_time("--at", &a.at)?;
    if let Some(path) = a.store.sqlite_path()
        && !path.is_file()
    {
        bail!("store {} does not exist", path.display());
    }
    let store = Store::open(&a.store, None).await?;
    let found = store.features_at(&a.symbol, at).await?;
    store.close().await;
    let Some(found) = found else {
        bail!(
            "store {} has no {} bar at {}",
            a.store,
            a.symbol,
            format_time(at)
        );
    };
    let mut values = serde_json::Map::new();
    let mut unavailable = serde_json::Map::new();
    for (f, value) in found.values {
        match value {
            Ok(v) => {
                values.insert(f.as_str().to_owned(), serde_json::json!(v));
            }
            Err(reason) => {
                values.insert(f.as_str().to_owned(), serde_json::Value::Null);
                unavailable.insert(f.as_str().to_owned(), serde_json::json!(reason.to_string()));
            }
        }
    }
    if a.json {
        return output::print_json(&serde_json::json!({
            "symbol": a.symbol.as_str(),
            "at": format_time(at),
            "features": values,
            "unavailable": unavailable,
        }));
    }
    let mut text = format!("{} at {}\n", a.symbol, format_time(at));
    for f in FeatureName::ALL {
        let name = f.as_str();
        match (unavailable.get(name), values.get(name)) {
            (Some(reason), _) => text.push_str(&format!(
                "  {name:<14} unavailable: {}\n",
                reason.as_str().unwrap_or("")
            )),
            (None, Some(v)) => text.push_str(&format!("  {name:<14} {v}\n")),
            (None, None) => {}
        }
    }
    output::print(&text);
    Ok(())
}
