//! The in-memory history: per symbol, the last `hours` bars, oldest first.

use std::collections::BTreeMap;

use trader_core::{Bar, HISTORY_BYTES_PER_SYMBOL_HOUR, HOUR_SECS, Symbol};

use crate::{Store, StoreError};

/// What [`HistoryWindow::push`] did with a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Newer than everything held.
    Appended,
    /// Older than the newest bar but inside the window: placed in order.
    Inserted,
    /// Same hour as a held bar, different values.
    Replaced,
    /// Same hour, same values.
    Unchanged,
    /// Older than the window: not held.
    TooOld,
}

/// Per symbol, at most `hours` hours of bars ending at that symbol's newest bar.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryWindow {
    hours: u32,
    bars: BTreeMap<Symbol, Vec<Bar>>,
}

impl HistoryWindow {
    /// An empty window for `symbols`.
    #[must_use]
    pub fn new(symbols: &[Symbol], hours: u32) -> Self {
        HistoryWindow {
            hours,
            bars: symbols
                .iter()
                .map(|s| (s.clone(), Vec::with_capacity(hours as usize + 1)))
                .collect(),
        }
    }

    /// Warm start: the newest `hours` hours of each symbol, read from `store`.
    ///
    /// # Errors
    /// A database error.
    pub async fn load(store: &Store, symbols: &[Symbol], hours: u32) -> Result<Self, StoreError> {
        let mut window = HistoryWindow::new(symbols, hours);
        for s in symbols {
            for bar in store.latest_bars(s, hours, None).await? {
                window.push(s, bar);
            }
        }
        Ok(window)
    }

    /// Adds one bar, keeping the order and the cap.
    pub fn push(&mut self, symbol: &Symbol, bar: Bar) -> PushOutcome {
        let hours = i64::from(self.hours);
        let bars = self.bars.entry(symbol.clone()).or_default();
        let newest = bars.last().map(|b| b.t);
        let outcome = match bars.binary_search_by_key(&bar.t, |b| b.t) {
            Ok(i) if bars[i] == bar => return PushOutcome::Unchanged,
            Ok(i) => {
                bars[i] = bar;
                PushOutcome::Replaced
            }
            Err(i) => {
                if newest.is_some_and(|n| bar.t <= n - hours * HOUR_SECS) {
                    return PushOutcome::TooOld;
                }
                bars.insert(i, bar);
                if i + 1 == bars.len() {
                    PushOutcome::Appended
                } else {
                    PushOutcome::Inserted
                }
            }
        };
        if let Some(newest) = bars.last().map(|b| b.t) {
            let keep_from = bars.partition_point(|b| b.t <= newest - hours * HOUR_SECS);
            bars.drain(..keep_from);
        }
        outcome
    }

    /// The bars held for `symbol`, oldest first.
    #[must_use]
    pub fn bars(&self, symbol: &Symbol) -> &[Bar] {
        self.bars.get(symbol).map_or(&[], Vec::as_slice)
    }

    /// The cap, in hours.
    #[must_use]
    pub fn hours(&self) -> u32 {
        self.hours
    }

    /// Bytes the window holds when full: hours x symbols x bytes per bar (the
    /// figure the budgeter uses).
    #[must_use]
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.hours) * self.bars.len() as u64 * HISTORY_BYTES_PER_SYMBOL_HOUR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(hour: i64, close: f64) -> Bar {
        Bar {
            t: 1_500_001_200 + hour * 3600,
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 1.0,
        }
    }

    #[test]
    fn keeps_at_most_the_cap_and_places_out_of_order_bars() {
        let s: Symbol = "BTC/USD".parse().unwrap();
        let mut w = HistoryWindow::new(std::slice::from_ref(&s), 3);
        assert_eq!(w.push(&s, bar(0, 10.0)), PushOutcome::Appended);
        assert_eq!(w.push(&s, bar(2, 12.0)), PushOutcome::Appended);
        assert_eq!(w.push(&s, bar(1, 11.0)), PushOutcome::Inserted);
        assert_eq!(w.push(&s, bar(1, 11.0)), PushOutcome::Unchanged);
        assert_eq!(w.push(&s, bar(1, 11.5)), PushOutcome::Replaced);
        assert_eq!(w.push(&s, bar(3, 13.0)), PushOutcome::Appended);
        let hours: Vec<i64> = w
            .bars(&s)
            .iter()
            .map(|b| (b.t - 1_500_001_200) / 3600)
            .collect();
        assert_eq!(hours, [1, 2, 3]);
        assert_eq!(w.push(&s, bar(0, 10.0)), PushOutcome::TooOld);
        assert_eq!(w.bars(&s).len(), 3);
        assert_eq!(w.capacity_bytes(), 3 * 48);
    }
}
