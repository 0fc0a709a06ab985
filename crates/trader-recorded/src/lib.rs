//! The one loader of recorded data sets: a folder of CSVs, one per symbol
//! (`BTCUSD.csv` is BTC/USD), header `timestamp,open,high,low,close,volume`.
//!
//! Every command that reads recorded bars (`trader data import`, `run`'s
//! embedded replay, `sim`, `backtest`, `compare`, `train`) reads them here,
//! so they all see the same bars: each row parsed and validated by
//! [`Bar::validate`] (finite, positive prices, high/low bracketing, volume not
//! negative, on the hour, closed), the rows sorted by time whatever their
//! order in the file, a repeated hour with the same values kept once and one
//! with different values refused. Every error names the file and the line
//! (and, for a bad bar, the symbol, the hour, the field and the value).
//!
//! What it does not do: store bars (trader-store) or serve them
//! (trader-sim). Tests: `cargo test -p trader-recorded`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use trader_core::{Bar, BarError, RECORDED_CSV_HEADER, Symbol, format_time};

/// Why a recorded set or file is refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} is not a directory of recorded CSVs")]
    NotADirectory { dir: PathBuf },
    #[error("no CSV files in {dir}")]
    NoFiles { dir: PathBuf },
    #[error("{path}: the file name does not name a symbol (BTCUSD.csv is BTC/USD)")]
    FileName { path: PathBuf },
    #[error("{path}: header is {found:?}, expected {RECORDED_CSV_HEADER:?}")]
    Header { path: PathBuf, found: String },
    #[error("{path}: line {line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: line {line}: {symbol} {source}")]
    BadBar {
        path: PathBuf,
        line: u64,
        symbol: Symbol,
        #[source]
        source: Box<BarError>,
    },
    #[error("{dir} has no CSV for {missing} (files are named like BTCUSD.csv)")]
    MissingSymbols { dir: PathBuf, missing: String },
    #[error(
        "{path}: lines {first} and {second} are both the {symbol} bar of {t}, with different values"
    )]
    DuplicateHour {
        path: PathBuf,
        symbol: Symbol,
        t: String,
        first: u64,
        second: u64,
    },
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

/// The CSVs of a recorded set with their symbols, sorted by symbol.
///
/// # Errors
/// The folder cannot be read or holds no CSV, or a file name names no symbol.
pub fn recorded_files(dir: &Path) -> Result<Vec<(Symbol, PathBuf)>, RecordedError> {
    if dir.exists() && !dir.is_dir() {
        return Err(RecordedError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let io = |source| RecordedError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let symbol = Symbol::from_file_stem(&stem)
                .map_err(|_| RecordedError::FileName { path: path.clone() })?;
            files.push((symbol, path));
        }
    }
    if files.is_empty() {
        return Err(RecordedError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// Reads one recorded CSV of `symbol`: every row validated against `now`,
/// sorted by time, a repeated identical hour kept once.
///
/// # Errors
/// The file cannot be read, a wrong header, a row that does not parse, a bar
/// that breaks a rule, or one hour twice with different values; each names
/// the file and the line.
pub fn read_recorded_csv(
    path: &Path,
    symbol: &Symbol,
    now: DateTime<Utc>,
) -> Result<Vec<Bar>, RecordedError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let found = header.iter().collect::<Vec<_>>().join(",");
    if found != RECORDED_CSV_HEADER {
        return Err(RecordedError::Header {
            path: path.to_path_buf(),
            found,
        });
    }
    // (bar, line), in file order.
    let mut rows: Vec<(Bar, u64)> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let row: CsvRow = record
            .deserialize(Some(&header))
            .map_err(|e| RecordedError::Row {
                path: path.to_path_buf(),
                line,
                message: e.to_string(),
            })?;
        let t = DateTime::parse_from_rfc3339(&row.timestamp).map_err(|e| RecordedError::Row {
            path: path.to_path_buf(),
            line,
            message: format!("timestamp {:?} is not RFC 3339: {e}", row.timestamp),
        })?;
        let bar = Bar {
            t: t.timestamp(),
            open: row.open,
            high: row.high,
            low: row.low,
            close: row.close,
            volume: row.volume,
        };
        bar.validate(now).map_err(|source| RecordedError::BadBar {
            path: path.to_path_buf(),
            line,
            symbol: symbol.clone(),
            source: Box::new(source),
        })?;
        rows.push((bar, line));
    }
    // Sorted by time; a stable sort keeps the file order of a repeated hour.
    rows.sort_by_key(|(bar, _)| bar.t);
    let mut bars: Vec<Bar> = Vec::with_capacity(rows.len());
    let mut last_line = 0;
    for (bar, line) in rows {
        match bars.last() {
            Some(prev) if prev.t == bar.t => {
                if *prev != bar {
                    return Err(RecordedError::DuplicateHour {
                        path: path.to_path_buf(),
                        symbol: symbol.clone(),
                        t: format_time(bar.t),
                        first: last_line.min(line),
                        second: last_line.max(line),
                    });
                }
            }
            _ => {
                bars.push(bar);
                last_line = line;
            }
        }
    }
    Ok(bars)
}

/// Reads a recorded set: the bars of every symbol in `dir` that `keep`
/// accepts, each file by [`read_recorded_csv`].
///
/// # Errors
/// As [`recorded_files`] and [`read_recorded_csv`].
pub fn read_recorded_set(
    dir: &Path,
    keep: impl Fn(&Symbol) -> bool,
    now: DateTime<Utc>,
) -> Result<BTreeMap<Symbol, Vec<Bar>>, RecordedError> {
    let mut set = BTreeMap::new();
    for (symbol, path) in recorded_files(dir)? {
        if keep(&symbol) {
            let bars = read_recorded_csv(&path, &symbol, now)?;
            set.insert(symbol, bars);
        }
    }
    Ok(set)
}

/// Reads the bars of exactly `symbols` from the recorded set in `dir`.
///
/// # Errors
/// As [`read_recorded_set`], or a symbol without its CSV (all of them named).
pub fn read_recorded_symbols(
    dir: &Path,
    symbols: &[Symbol],
    now: DateTime<Utc>,
) -> Result<BTreeMap<Symbol, Vec<Bar>>, RecordedError> {
    let set = read_recorded_set(dir, |s| symbols.contains(s), now)?;
    let missing: Vec<&str> = symbols
        .iter()
        .filter(|s| !set.contains_key(*s))
        .map(Symbol::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(RecordedError::MissingSymbols {
            dir: dir.to_path_buf(),
            missing: missing.join(", "),
        });
    }
    Ok(set)
}

/// A csv error with the file and, when known, the line.
fn csv_error(path: &Path, e: csv::Error) -> RecordedError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => RecordedError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => RecordedError::Row {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}
