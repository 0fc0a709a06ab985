//! `trader data import | features`: recorded CSVs into the store, and the
//! feature values the trader would see at a bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use trader_core::{
    Bar, Clock, FeatureName, RECORDED_CSV_HEADER, Symbol, SystemClock, feature_value, format_time,
};
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
    /// SQLite file (created if missing).
    #[arg(long)]
    store: PathBuf,
    /// Keep only this many hours per symbol (the newest); default: keep all.
    #[arg(long)]
    history_hours: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    symbol: Symbol,
    /// Bar start time, RFC 3339 (2018-08-10T12:00:00Z).
    #[arg(long)]
    at: String,
    #[arg(long)]
    json: bool,
}

/// Rows are committed in batches of this many bars (one transaction each).
const BATCH: usize = 1000;

pub(crate) fn run(cmd: &DataCommand) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cmd {
            DataCommand::Import(a) => import(a).await,
            DataCommand::Features(a) => features(a).await,
        }
    })?;
    Ok(Outcome::Ok)
}

#[derive(Debug, Deserialize)]
struct CsvRow {
    timestamp: String,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// Reads one recorded CSV, naming the file and line in every error.
pub(crate) fn read_csv(path: &Path) -> anyhow::Result<Vec<Bar>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?;
    let found = header.iter().collect::<Vec<_>>().join(",");
    if found != RECORDED_CSV_HEADER {
        bail!(
            "{}: header is {found:?}, expected {RECORDED_CSV_HEADER:?}",
            path.display()
        );
    }
    let mut bars = Vec::new();
    for (i, row) in reader.deserialize::<CsvRow>().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: line {line}", path.display()))?;
        let t = DateTime::parse_from_rfc3339(&row.timestamp).with_context(|| {
            format!(
                "{}: line {line}: timestamp {:?} is not RFC 3339",
                path.display(),
                row.timestamp
            )
        })?;
        bars.push(Bar {
            t: t.timestamp(),
            open: row.open,
            high: row.high,
            low: row.low,
            close: row.close,
            volume: row.volume,
        });
    }
    Ok(bars)
}

/// The CSVs of a recorded set, sorted, with their symbols.
pub(crate) fn recorded_files(dir: &Path) -> anyhow::Result<Vec<(Symbol, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading data directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading data directory {}", dir.display()))?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let symbol = Symbol::from_file_stem(&stem).with_context(|| {
                format!("{}: the file name does not name a symbol", path.display())
            })?;
            files.push((symbol, path));
        }
    }
    if files.is_empty() {
        bail!("no CSV files in {}", dir.display());
    }
    files.sort();
    Ok(files)
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

async fn import(a: &ImportArgs) -> anyhow::Result<()> {
    let files = recorded_files(&a.dir)?;
    let parsed: Vec<(Symbol, PathBuf, Vec<Bar>)> = files
        .into_iter()
        .map(|(s, p)| read_csv(&p).map(|bars| (s, p, bars)))
        .collect::<anyhow::Result<_>>()?;
    let store = Store::open(&a.store, a.history_hours).await?;
    let total: usize = parsed.iter().map(|(_, _, b)| b.len()).sum();
    let progress = indicatif::ProgressBar::new(total as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg:8} [{bar:40}] {pos}/{len} bars ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let clock = SystemClock;
    let started = Instant::now();
    let mut rows = Vec::new();
    for (symbol, path, bars) in &parsed {
        progress.set_message(symbol.to_string());
        let mut row = ImportRow {
            symbol: symbol.to_string(),
            file: path.display().to_string(),
            rows: bars.len(),
            inserted: 0,
            replaced: 0,
            unchanged: 0,
            pruned: 0,
            held: 0,
        };
        for chunk in bars.chunks(BATCH) {
            let r = store
                .insert_bars(symbol, chunk, clock.now())
                .await
                .with_context(|| format!("importing {}", path.display()))?;
            row.inserted += r.inserted;
            row.replaced += r.replaced;
            row.unchanged += r.unchanged;
            row.pruned += r.pruned;
            progress.inc(chunk.len() as u64);
        }
        rows.push(row);
    }
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let counts = store.bar_counts().await?;
    for row in &mut rows {
        row.held = counts
            .iter()
            .find(|(s, _)| s.as_str() == row.symbol)
            .map_or(0, |(_, n)| *n);
    }
    store.close().await;
    tracing::info!(store = %a.store.display(), bars = total, seconds, "import done");
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            store: &'a Path,
            history_hours: Option<u32>,
            seconds: f64,
            bars_per_second: f64,
            symbols: &'a [ImportRow],
        }
        return output::print_json(&Out {
            store: &a.store,
            history_hours: a.history_hours,
            seconds,
            bars_per_second: total as f64 / seconds,
            symbols: &rows,
        });
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
        a.store.display()
    ));
    output::print(&text);
    Ok(())
}

async fn features(a: &FeaturesArgs) -> anyhow::Result<()> {
    let at = DateTime::parse_from_rfc3339(&a.at)
        .with_context(|| format!("--at {:?} is not an RFC 3339 time", a.at))?
        .timestamp();
    if !a.store.is_file() {
        bail!("store {} does not exist", a.store.display());
    }
    let store = Store::open(&a.store, None).await?;
    let longest = FeatureName::ALL
        .iter()
        .map(|f| f.bars_needed())
        .max()
        .unwrap_or(1);
    let bars = store.latest_bars(&a.symbol, longest, Some(at)).await?;
    store.close().await;
    if bars.last().map(|b| b.t) != Some(at) {
        bail!(
            "store {} has no {} bar at {}",
            a.store.display(),
            a.symbol,
            format_time(at)
        );
    }
    let mut values = serde_json::Map::new();
    let mut unavailable = serde_json::Map::new();
    for f in FeatureName::ALL {
        match feature_value(&bars, f) {
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
