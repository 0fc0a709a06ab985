//! `trader data import` without its command line: parsed recorded bars into
//! the store in batches of [`IMPORT_BATCH`] rows, one transaction each,
//! stopping only at a batch boundary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use trader_core::{Bar, Clock, Symbol};

use crate::{Recorder, Store, StoreError};

/// Rows are committed in batches of this many bars (one transaction each).
pub const IMPORT_BATCH: usize = 1000;

/// What an import did for one symbol's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSymbol {
    pub symbol: Symbol,
    /// The file its bars were read from (as given).
    pub file: PathBuf,
    /// Bars in the file.
    pub rows: usize,
    pub inserted: u64,
    /// Same hour, different values: the new bar replaced the old one.
    pub replaced: u64,
    /// Same hour, same values: nothing changed.
    pub unchanged: u64,
    /// Bars older than the retention window, deleted after a batch.
    pub pruned: u64,
    /// Bars of the symbol in the store after the import (0 when stopped).
    pub held: u64,
}

/// What an import did: one row per symbol reached, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub symbols: Vec<ImportedSymbol>,
    /// True when the stop flag ended the import at a batch boundary: every
    /// batch counted here is committed, the rest of the files is not.
    pub stopped: bool,
}

impl ImportReport {
    /// Rows this import wrote (inserted or replaced), in whole batches.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.symbols.iter().map(|r| r.inserted + r.replaced).sum()
    }
}

impl Store {
    /// Imports every symbol's bars, read and checked by the caller before
    /// the store is touched, in batches of [`IMPORT_BATCH`] rows, one
    /// transaction each (each batch validated against `clock` and pruned to
    /// the retention window, as [`Store::insert_bars`] does).
    ///
    /// Before each batch `stop` is read: once set, the import returns with
    /// `stopped` and the batches already committed, nothing of the rest.
    /// `progress(symbol, n)` is called with 0 when a symbol starts and with
    /// the batch's row count after each batch. A completed import fills
    /// `held` from [`Store::bar_counts`]. The store is not closed.
    ///
    /// # Errors
    /// [`StoreError::Import`] naming the file, around the error of its
    /// batch (a bad bar: nothing of that batch is written; earlier batches
    /// stay), or a database error counting the bars.
    pub async fn import_recorded(
        &self,
        files: &[(Symbol, PathBuf, Vec<Bar>)],
        clock: &dyn Clock,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Symbol, u64),
    ) -> Result<ImportReport, StoreError> {
        let mut symbols = Vec::with_capacity(files.len());
        for (symbol, path, bars) in files {
            progress(symbol, 0);
            let mut row = ImportedSymbol {
                symbol: symbol.clone(),
                file: path.clone(),
                rows: bars.len(),
                inserted: 0,
                replaced: 0,
                unchanged: 0,
                pruned: 0,
                held: 0,
            };
            for chunk in bars.chunks(IMPORT_BATCH) {
                if stop.load(Ordering::SeqCst) {
                    symbols.push(row);
                    return Ok(ImportReport {
                        symbols,
                        stopped: true,
                    });
                }
                let r = self
                    .insert_bars(symbol, chunk, clock.now())
                    .await
                    .map_err(|source| StoreError::Import {
                        path: path.clone(),
                        source: Box::new(source),
                    })?;
                row.inserted += r.inserted;
                row.replaced += r.replaced;
                row.unchanged += r.unchanged;
                row.pruned += r.pruned;
                progress(symbol, chunk.len() as u64);
            }
            symbols.push(row);
        }
        let counts = self.bar_counts().await?;
        for row in &mut symbols {
            row.held = counts
                .iter()
                .find(|(s, _)| *s == row.symbol)
                .map_or(0, |(_, n)| *n);
        }
        Ok(ImportReport {
            symbols,
            stopped: false,
        })
    }
}
