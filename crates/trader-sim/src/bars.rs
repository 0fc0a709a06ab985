//! The recorded market: bar lookups and Alpaca-style paged bar queries.

use std::collections::BTreeMap;

use trader_core::{Bar, HOUR_SECS, Symbol};

pub(crate) struct Market {
    bars: BTreeMap<Symbol, Vec<Bar>>,
}

/// One page of a bars query.
pub(crate) struct BarsPage {
    pub(crate) bars: BTreeMap<Symbol, Vec<Bar>>,
    pub(crate) next_page_token: Option<String>,
}

/// A bars query, already parsed.
pub(crate) struct BarsQuery {
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) start: Option<i64>,
    pub(crate) end: Option<i64>,
    pub(crate) limit: usize,
    pub(crate) page_token: Option<(usize, i64)>,
}

impl Market {
    pub(crate) fn new(bars: BTreeMap<Symbol, Vec<Bar>>) -> Self {
        Market { bars }
    }

    pub(crate) fn has(&self, symbol: &Symbol) -> bool {
        self.bars.contains_key(symbol)
    }

    /// The bars starting at or after `t`, oldest first.
    pub(crate) fn bars_from(&self, symbol: &Symbol, t: i64) -> &[Bar] {
        self.bars.get(symbol).map_or(&[], |bars| {
            let i = bars.partition_point(|b| b.t < t);
            &bars[i..]
        })
    }

    /// The newest bar closed by `now`.
    pub(crate) fn last_closed(&self, symbol: &Symbol, now: i64) -> Option<Bar> {
        let bars = self.bars.get(symbol)?;
        let i = bars.partition_point(|b| b.t + HOUR_SECS <= now);
        i.checked_sub(1).map(|i| bars[i])
    }

    /// Closed bars of `q.symbols` (sorted by symbol, then time), `q.limit` in
    /// all per page; the token names the first bar of the next page.
    pub(crate) fn query(&self, q: &BarsQuery, now: i64) -> BarsPage {
        let mut symbols: Vec<&Symbol> = q.symbols.iter().filter(|s| self.has(s)).collect();
        symbols.sort();
        symbols.dedup();
        let (from_sym, from_t) = q.page_token.unwrap_or((0, i64::MIN));
        let mut out: BTreeMap<Symbol, Vec<Bar>> = BTreeMap::new();
        let mut taken = 0;
        for (i, symbol) in symbols.iter().enumerate().skip(from_sym) {
            let lower = if i == from_sym {
                from_t.max(q.start.unwrap_or(i64::MIN))
            } else {
                q.start.unwrap_or(i64::MIN)
            };
            let series = &self.bars[*symbol];
            let first = series.partition_point(|b| b.t < lower);
            for bar in &series[first..] {
                if bar.t + HOUR_SECS > now || q.end.is_some_and(|e| bar.t > e) {
                    break;
                }
                if taken == q.limit {
                    return BarsPage {
                        bars: out,
                        next_page_token: Some(format!("{i}:{}", bar.t)),
                    };
                }
                out.entry((*symbol).clone()).or_default().push(*bar);
                taken += 1;
            }
        }
        BarsPage {
            bars: out,
            next_page_token: None,
        }
    }
}

/// Parses a page token written by [`Market::query`].
pub(crate) fn parse_page_token(token: &str) -> Option<(usize, i64)> {
    let (i, t) = token.split_once(':')?;
    Some((i.parse().ok()?, t.parse().ok()?))
}
