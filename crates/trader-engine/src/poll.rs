//! The poller: at each poll, ask the market data for the bars since the next
//! hour not yet handed over, keep only closed bars (`t + 1h <= now`), and
//! hand each newly closed hour over exactly once, in order. After downtime the
//! first poll backfills the whole gap (the data client pages). A poll does
//! no request at all when no hour can have closed since the last one.

use std::collections::BTreeMap;

use trader_core::{Bar, HOUR_SECS, MarketData, MarketError, Symbol};

/// One closed hour: the bars of every symbol that has one.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedHour {
    /// Open time of the hour, epoch seconds.
    pub t: i64,
    pub bars: BTreeMap<Symbol, Bar>,
    /// Every symbol of the poller has its bar. An incomplete hour is handed
    /// over (its bars are real and belong in the store) only once a later
    /// hour is complete, so a late bar is waited for, not lost.
    pub complete: bool,
}

/// Hands over closed hours of `symbols` from `market`, each once.
pub struct Poller<M> {
    market: M,
    symbols: Vec<Symbol>,
    next_hour: i64,
    pending: BTreeMap<i64, BTreeMap<Symbol, Bar>>,
}

impl<M: MarketData> Poller<M> {
    /// A poller whose first hour to hand over opens at `next_hour` (the hour
    /// after the newest stored bar, or the start of the history to load).
    pub fn new(market: M, symbols: Vec<Symbol>, next_hour: i64) -> Self {
        Poller {
            market,
            symbols,
            next_hour: next_hour.div_euclid(HOUR_SECS) * HOUR_SECS,
            pending: BTreeMap::new(),
        }
    }

    /// Open time of the next hour to hand over.
    #[must_use]
    pub fn next_hour(&self) -> i64 {
        self.next_hour
    }

    /// The market this poller reads.
    pub fn market(&self) -> &M {
        &self.market
    }

    /// One poll at `now` (epoch seconds): the hours closed since the last
    /// hand-over, oldest first. `Ok(vec![])` without a request when no hour
    /// can have closed. On error nothing is handed over and the next poll
    /// asks again from the same hour.
    pub async fn poll(&mut self, now: i64) -> Result<Vec<ClosedHour>, MarketError> {
        let newest_closed = now.div_euclid(HOUR_SECS) * HOUR_SECS - HOUR_SECS;
        if newest_closed < self.next_hour {
            return Ok(Vec::new());
        }
        let fetched = self
            .market
            .bars(&self.symbols, self.next_hour, newest_closed)
            .await?;
        for (symbol, bars) in fetched {
            if !self.symbols.contains(&symbol) {
                continue;
            }
            for bar in bars {
                let closed = bar.t + HOUR_SECS <= now;
                if closed && bar.t >= self.next_hour && bar.t % HOUR_SECS == 0 {
                    self.pending
                        .entry(bar.t)
                        .or_default()
                        .insert(symbol.clone(), bar);
                }
            }
        }
        Ok(self.hand_over())
    }

    fn is_complete(&self, bars: &BTreeMap<Symbol, Bar>) -> bool {
        self.symbols.iter().all(|s| bars.contains_key(s))
    }

    fn hand_over(&mut self) -> Vec<ClosedHour> {
        let newest_complete = self
            .pending
            .iter()
            .rev()
            .find(|(_, bars)| self.is_complete(bars))
            .map(|(t, _)| *t);
        let mut out = Vec::new();
        while let Some((&t, bars)) = self.pending.first_key_value() {
            let complete = self.is_complete(bars);
            if !complete && newest_complete.is_none_or(|c| c < t) {
                break; // wait for the missing bars
            }
            if t > self.next_hour {
                tracing::warn!(
                    from = self.next_hour,
                    to = t - HOUR_SECS,
                    "no bars at all for these hours"
                );
            }
            if !complete {
                tracing::warn!(t, "hour closed with some symbols' bars missing");
            }
            let bars = self.pending.pop_first().map(|(_, b)| b).unwrap_or_default();
            self.next_hour = t + HOUR_SECS;
            out.push(ClosedHour { t, bars, complete });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use trader_core::BarsBySymbol;

    use super::*;

    /// A market of fixed bars that counts its requests.
    struct Fixed {
        bars: BarsBySymbol,
        requests: Mutex<Vec<(i64, i64)>>,
    }

    impl MarketData for Fixed {
        async fn bars(
            &self,
            symbols: &[Symbol],
            start: i64,
            end: i64,
        ) -> Result<BarsBySymbol, MarketError> {
            if let Ok(mut r) = self.requests.lock() {
                r.push((start, end));
            }
            Ok(symbols
                .iter()
                .filter_map(|s| {
                    let bars: Vec<Bar> = self
                        .bars
                        .get(s)?
                        .iter()
                        .filter(|b| (start..=end).contains(&b.t))
                        .copied()
                        .collect();
                    Some((s.clone(), bars))
                })
                .collect())
        }
    }

    fn bar(t: i64) -> Bar {
        Bar::flat(t, 1.0)
    }

    const H: i64 = HOUR_SECS;

    #[tokio::test]
    async fn hands_over_closed_hours_once_and_waits_for_late_bars() {
        let a: Symbol = "BTC/USD".parse().unwrap();
        let b: Symbol = "ETH/USD".parse().unwrap();
        // b misses hour 2 entirely; hour 5 is not closed yet at 5H + 10.
        let market = Fixed {
            bars: [
                (a.clone(), (0..6).map(|h| bar(h * H)).collect()),
                (
                    b.clone(),
                    [0, 1, 3, 4, 5].iter().map(|h| bar(h * H)).collect(),
                ),
            ]
            .into_iter()
            .collect(),
            requests: Mutex::new(Vec::new()),
        };
        let mut p = Poller::new(market, vec![a.clone(), b.clone()], 0);
        // Nothing closed before 1H: no request at all.
        assert!(p.poll(H - 1).await.unwrap().is_empty());
        assert!(p.market().requests.lock().unwrap().is_empty());
        let first = p.poll(2 * H + 5).await.unwrap();
        assert_eq!(first.iter().map(|h| h.t).collect::<Vec<_>>(), [0, H]);
        assert!(first.iter().all(|h| h.complete));
        // Same now again: no new hour, no request.
        let before = p.market().requests.lock().unwrap().len();
        assert!(p.poll(2 * H + 100).await.unwrap().is_empty());
        assert_eq!(p.market().requests.lock().unwrap().len(), before);
        // At 3H+: hour 2 has only a's bar and nothing later is complete: wait.
        assert!(p.poll(3 * H + 5).await.unwrap().is_empty());
        // At 5H+10: hours 3 and 4 are complete, so 2 goes over incomplete.
        let later = p.poll(5 * H + 10).await.unwrap();
        assert_eq!(
            later.iter().map(|h| (h.t, h.complete)).collect::<Vec<_>>(),
            [(2 * H, false), (3 * H, true), (4 * H, true)]
        );
        assert_eq!(later[0].bars.keys().collect::<Vec<_>>(), [&a]);
        assert_eq!(p.next_hour(), 5 * H);
        // The last request asked from the first hour not handed over.
        assert_eq!(
            p.market().requests.lock().unwrap().last(),
            Some(&(2 * H, 4 * H))
        );
    }
}
