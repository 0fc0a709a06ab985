//! Pure planning: target weights from aggregated actions, orders for the
//! differences, and the order ids that make a retry or a restart safe.

use std::collections::BTreeMap;

use chrono::DateTime;
use trader_config::TradingSettings;
use trader_core::{CRYPTO_FEE_BPS, OrderAmount, Side, Symbol};
use trader_store::RunMode;

/// Target weights from aggregated actions (DESIGN.md, Action): clamp to
/// [0, 1], times `max_weight`, scaled down so the sum is at most `max_gross`.
#[must_use]
pub fn target_weights(actions: &[f32], trading: &TradingSettings) -> Vec<f64> {
    let mut w: Vec<f64> = actions
        .iter()
        .map(|a| f64::from(*a).clamp(0.0, 1.0) * trading.max_weight)
        .collect();
    let sum: f64 = w.iter().sum();
    if sum > trading.max_gross && sum > 0.0 {
        let k = trading.max_gross / sum;
        for x in &mut w {
            *x *= k;
        }
    }
    w
}

/// `q` rounded down to 8 decimals, never above `q`: `floor(q * 1e8) / 1e8`
/// alone can land one ulp above it (2016.7077401699999 gives
/// 2016.70774017), which would sell more than is held.
fn floor_to_1e8(q: f64) -> f64 {
    let steps = (q * 1e8).floor();
    let r = steps / 1e8;
    if r > q { (steps - 1.0) / 1e8 } else { r }
}

/// The prefix of a run's order ids: the profile for a live run (`lean`),
/// the profile and run for a replay or backtest (`lean-r12`).
#[must_use]
pub fn order_id_prefix(profile: &str, mode: RunMode, run_id: i64) -> String {
    match mode {
        RunMode::Live => profile.to_owned(),
        RunMode::Replay | RunMode::Backtest => format!("{profile}-r{run_id}"),
    }
}

/// `lean-20180901T1000Z-BTCUSD` (live) or `lean-r12-20180901T1000Z-BTCUSD`
/// (replay run 12): the same (prefix, hour, symbol) always gives the same
/// id, so a retry or a restart of the run cannot place a second order.
#[must_use]
pub fn client_order_id(prefix: &str, bar_t: i64, symbol: &Symbol) -> String {
    let t = DateTime::from_timestamp(bar_t, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%MZ");
    format!("{prefix}-{t}-{}", symbol.as_str().replace('/', ""))
}

/// One planned order.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTrade {
    pub symbol: Symbol,
    pub side: Side,
    pub amount: OrderAmount,
}

/// Orders moving `positions` (qty per symbol, valued at `prices`) toward
/// `targets` (weights of `equity`): sells as quantities (never more than
/// held), buys as notionals (all buys together within `cash` less the fee),
/// each at least `min_trade_notional`.
#[must_use]
pub fn plan_orders(
    symbols: &[Symbol],
    targets: &[f64],
    positions: &BTreeMap<Symbol, f64>,
    prices: &BTreeMap<Symbol, f64>,
    equity: f64,
    cash: f64,
    trading: &TradingSettings,
) -> Vec<PlannedTrade> {
    let mut sells = Vec::new();
    let mut buys = Vec::new();
    for (symbol, target) in symbols.iter().zip(targets) {
        let Some(&price) = prices.get(symbol).filter(|p| **p > 0.0) else {
            continue;
        };
        let held = positions.get(symbol).copied().unwrap_or(0.0);
        let diff = target * equity - held * price;
        if diff.abs() < trading.min_trade_notional.max(0.01) {
            continue;
        }
        if diff < 0.0 {
            // Selling to a zero target sells everything held.
            let qty = if *target <= 0.0 {
                held
            } else {
                (-diff / price).min(held)
            };
            // Eight decimals, rounded down: Alpaca's decimal strings carry
            // eight, and rounding up would sell more than is held.
            let qty = floor_to_1e8(qty);
            if qty > 0.0 && qty * price >= trading.min_trade_notional {
                sells.push(PlannedTrade {
                    symbol: symbol.clone(),
                    side: Side::Sell,
                    amount: OrderAmount::Qty(qty),
                });
            }
        } else {
            buys.push((symbol.clone(), diff));
        }
    }
    // Buys share the cash there is now (sells settle at the next open).
    let spendable = (cash * (1.0 - CRYPTO_FEE_BPS / 10_000.0)).max(0.0);
    let wanted: f64 = buys.iter().map(|(_, d)| d).sum();
    let k = if wanted > spendable && wanted > 0.0 {
        spendable / wanted
    } else {
        1.0
    };
    for (symbol, diff) in buys {
        let notional = (diff * k * 100.0).floor() / 100.0;
        if notional >= trading.min_trade_notional.max(0.01) {
            sells.push(PlannedTrade {
                symbol,
                side: Side::Buy,
                amount: OrderAmount::Notional(notional),
            });
        }
    }
    sells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn targets_are_long_only_capped_and_scaled() {
        let t = TradingSettings {
            max_weight: 0.5,
            max_gross: 0.6,
            min_trade_notional: 10.0,
        };
        let w = target_weights(&[1.0, -0.5, 0.5], &t);
        // 0.5, 0, 0.25 sum to 0.75 > 0.6: scaled by 0.8.
        assert!(
            (w[0] - 0.4).abs() < 1e-9 && w[1] == 0.0 && (w[2] - 0.2).abs() < 1e-9,
            "{w:?}"
        );
    }

    #[test]
    fn orders_sell_what_is_held_and_buy_within_cash() {
        let t = TradingSettings::default();
        let (btc, eth) = (sym("BTC/USD"), sym("ETH/USD"));
        let symbols = vec![btc.clone(), eth.clone()];
        let prices: BTreeMap<Symbol, f64> = [(btc.clone(), 100.0), (eth.clone(), 10.0)].into();
        let held: BTreeMap<Symbol, f64> = [(btc.clone(), 2.0)].into();
        // Equity 1000 = 800 cash + 2 BTC at 100. Targets: BTC 0, ETH 0.3.
        let orders = plan_orders(&symbols, &[0.0, 0.3], &held, &prices, 1000.0, 800.0, &t);
        assert_eq!(
            orders,
            [
                PlannedTrade {
                    symbol: btc,
                    side: Side::Sell,
                    amount: OrderAmount::Qty(2.0)
                },
                PlannedTrade {
                    symbol: eth.clone(),
                    side: Side::Buy,
                    amount: OrderAmount::Notional(300.0)
                },
            ]
        );
        // Little cash: the buy shrinks to what there is, less the fee.
        let orders = plan_orders(&symbols, &[0.2, 0.3], &held, &prices, 1000.0, 50.0, &t);
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].amount, OrderAmount::Notional(49.87));
        // Differences under min_trade_notional are not traded.
        assert!(plan_orders(&symbols, &[0.205, 0.0], &held, &prices, 1000.0, 800.0, &t).is_empty());
    }

    #[test]
    fn client_order_ids_are_derived_from_profile_hour_and_symbol() {
        let id = client_order_id("lean", 1_535_796_000, &sym("BTC/USD"));
        assert_eq!(id, "lean-20180901T1000Z-BTCUSD");
        assert!(id.len() <= 128);
    }

    #[test]
    fn replay_and_backtest_order_ids_carry_the_run_so_two_runs_never_collide() {
        let t = 1_535_796_000;
        let live = |run| {
            client_order_id(
                &order_id_prefix("lean", RunMode::Live, run),
                t,
                &sym("BTC/USD"),
            )
        };
        // A live run's ids do not depend on the run: a restarted trader
        // re-sends the same id, and the broker refuses a second order.
        assert_eq!(live(1), live(2));
        for mode in [RunMode::Replay, RunMode::Backtest] {
            let id = |run| client_order_id(&order_id_prefix("lean", mode, run), t, &sym("BTC/USD"));
            assert_eq!(id(12), "lean-r12-20180901T1000Z-BTCUSD");
            assert_ne!(id(12), id(13));
            assert_eq!(id(12), id(12), "the same run resends the same id");
        }
    }
}
