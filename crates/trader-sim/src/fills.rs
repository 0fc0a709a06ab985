//! How the recorded bars fill open orders, settled lazily up to the clock's
//! now each time an account is read.
//!
//! - market: at the open of the first bar starting at or after the order;
//! - limit buy at L: at the open of the first such bar if the open is at or
//!   below L, else at L once a closed bar's low reaches L (sells mirror it
//!   with the high);
//! - stop-limit buy at S, L: triggered when a bar opens at or above S (then a
//!   limit from that open) or its high reaches S (then, if S <= L, filled at
//!   S by that bar's close; else a limit from the next bar); sells mirror it;
//! - `ioc`: only the open of the next bar; unfilled there, canceled.
//!
//! A fill charges Alpaca's crypto fee on the asset received; a buy the cash
//! cannot pay for at its fill is canceled, as is a sell with nothing held.

use trader_core::{Bar, HOUR_SECS};

use crate::bars::Market;
use crate::broker::{
    Account, FEE_BPS, Fill, Order, OrderType, Side, Status, TimeInForce, uuid_like,
};

/// What one bar does to an open order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Filled at `price`, at time `at`.
    Fill { price: f64, at: i64 },
    /// Nothing in this bar (it has closed); a stop may have been reached.
    Pass { triggered: bool },
    /// The bar has opened but not closed: nothing known yet beyond its open.
    Wait { triggered: bool },
}

/// Whether a limit at `limit` on `side` takes `price`.
fn takes(side: Side, limit: f64, price: f64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

/// Whether a stop at `stop` on `side` is reached at `price`.
fn reaches(side: Side, stop: f64, price: f64) -> bool {
    match side {
        Side::Buy => price >= stop,
        Side::Sell => price <= stop,
    }
}

/// The bar's price extreme a limit on `side` looks at (low for buys).
fn limit_extreme(side: Side, bar: &Bar) -> f64 {
    match side {
        Side::Buy => bar.low,
        Side::Sell => bar.high,
    }
}

/// The extreme a stop on `side` looks at (high for buys).
fn stop_extreme(side: Side, bar: &Bar) -> f64 {
    match side {
        Side::Buy => bar.high,
        Side::Sell => bar.low,
    }
}

/// One bar against an order; `closed`: the bar has closed by now.
fn step(o: &Order, bar: &Bar, closed: bool) -> Step {
    let close_at = bar.t + HOUR_SECS;
    let limit = o.limit_price.unwrap_or(f64::NAN);
    let as_limit = |triggered: bool| {
        if takes(o.side, limit, bar.open) {
            Step::Fill {
                price: bar.open,
                at: bar.t,
            }
        } else if closed && takes(o.side, limit, limit_extreme(o.side, bar)) {
            Step::Fill {
                price: limit,
                at: close_at,
            }
        } else if closed {
            Step::Pass { triggered }
        } else {
            Step::Wait { triggered }
        }
    };
    match o.order_type {
        OrderType::Market => Step::Fill {
            price: bar.open,
            at: bar.t,
        },
        OrderType::Limit => as_limit(false),
        OrderType::StopLimit if o.triggered => as_limit(true),
        OrderType::StopLimit => {
            let stop = o.stop_price.unwrap_or(f64::NAN);
            if reaches(o.side, stop, bar.open) {
                as_limit(true)
            } else if closed && reaches(o.side, stop, stop_extreme(o.side, bar)) {
                if takes(o.side, limit, stop) {
                    Step::Fill {
                        price: stop,
                        at: close_at,
                    }
                } else {
                    Step::Pass { triggered: true }
                }
            } else if closed {
                Step::Pass { triggered: false }
            } else {
                Step::Wait { triggered: false }
            }
        }
    }
}

impl Account {
    /// Fills or cancels every open order as the bars opened by `now` decide.
    pub(crate) fn settle(&mut self, market: &Market, now: i64) {
        for i in 0..self.orders.len() {
            if self.orders[i].status != Status::New {
                continue;
            }
            let (symbol, from) = (self.orders[i].symbol.clone(), self.orders[i].next_bar);
            let ioc = self.orders[i].time_in_force == TimeInForce::Ioc;
            for bar in market.bars_from(&symbol, from) {
                if bar.t > now {
                    break;
                }
                let closed = bar.t + HOUR_SECS <= now;
                let outcome = step(&self.orders[i], bar, closed);
                if ioc {
                    // Only the next bar's open counts.
                    match outcome {
                        Step::Fill { price, at } if at == bar.t => self.fill(i, price, at),
                        _ => {
                            let o = &mut self.orders[i];
                            o.status = Status::Canceled;
                            o.canceled_at = Some(bar.t);
                            o.updated_at = bar.t;
                        }
                    }
                    break;
                }
                let o = &mut self.orders[i];
                match outcome {
                    Step::Fill { price, at } => {
                        self.fill(i, price, at);
                        break;
                    }
                    Step::Pass { triggered } => {
                        o.triggered |= triggered;
                        o.next_bar = bar.t + 1;
                    }
                    Step::Wait { triggered } => {
                        o.triggered |= triggered;
                        break;
                    }
                }
            }
        }
    }

    /// Executes order `i` at `price` (canceled if it cannot be paid for or
    /// there is nothing to sell).
    fn fill(&mut self, i: usize, price: f64, at: i64) {
        let order = &self.orders[i];
        let fee = FEE_BPS / 10_000.0;
        let position = self.positions.entry(order.symbol.clone()).or_default();
        let qty = match order.side {
            Side::Buy => {
                let spend = order
                    .notional
                    .unwrap_or_else(|| order.qty.unwrap_or(0.0) * price);
                if spend > self.cash + 1e-9 {
                    0.0
                } else {
                    let gross = spend / price;
                    self.cash -= spend;
                    position.qty += gross * (1.0 - fee);
                    position.cost += spend;
                    gross
                }
            }
            Side::Sell => {
                let want = order
                    .qty
                    .unwrap_or_else(|| order.notional.unwrap_or(0.0) / price);
                let qty = want.min(position.qty);
                if qty > 0.0 {
                    let share = qty / position.qty;
                    position.cost -= position.cost * share;
                    position.qty -= qty;
                    self.cash += qty * price * (1.0 - fee);
                }
                qty.max(0.0)
            }
        };
        if position.qty <= 1e-12 {
            self.positions.remove(&order.symbol);
        }
        let fill_id = format!(
            "{}::{}",
            trader_core::format_time(at)
                .chars()
                .filter(char::is_ascii_digit)
                .take(14)
                .collect::<String>()
                + "000",
            uuid_like(5, self.number << 24 | (self.fills.len() as u64 + 1))
        );
        let order = &mut self.orders[i];
        order.updated_at = at;
        if qty > 0.0 {
            order.status = Status::Filled;
            order.filled_qty = qty;
            order.filled_avg_price = Some(price);
            order.filled_at = Some(at);
            self.fills.push(Fill {
                id: fill_id,
                order_id: order.id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                qty,
                price,
                t: at,
            });
        } else {
            order.status = Status::Canceled;
            order.canceled_at = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp)]

    use super::*;

    fn bar(open: f64, high: f64, low: f64, close: f64) -> Bar {
        Bar {
            t: 3600,
            open,
            high,
            low,
            close,
            volume: 1.0,
        }
    }

    fn order(side: Side, order_type: OrderType, limit: f64, stop: f64) -> Order {
        Order {
            id: String::new(),
            client_order_id: String::new(),
            symbol: "BTC/USD".parse().unwrap_or_else(|_| unreachable!()),
            side,
            qty: Some(1.0),
            notional: None,
            order_type,
            limit_price: Some(limit),
            stop_price: Some(stop),
            time_in_force: TimeInForce::Gtc,
            created_at: 0,
            status: Status::New,
            filled_qty: 0.0,
            filled_avg_price: None,
            filled_at: None,
            updated_at: 0,
            canceled_at: None,
            replaced_at: None,
            replaced_by: None,
            replaces: None,
            triggered: false,
            next_bar: 0,
        }
    }

    #[test]
    fn a_limit_fills_at_the_open_when_it_is_better_else_at_the_limit_once_reached() {
        let buy = order(Side::Buy, OrderType::Limit, 100.0, 0.0);
        let at_open = Step::Fill {
            price: 95.0,
            at: 3600,
        };
        assert_eq!(step(&buy, &bar(95.0, 99.0, 90.0, 96.0), false), at_open);
        let at_limit = Step::Fill {
            price: 100.0,
            at: 7200,
        };
        assert_eq!(step(&buy, &bar(105.0, 106.0, 99.0, 101.0), true), at_limit);
        // The low is known at the close only.
        let wait = Step::Wait { triggered: false };
        assert_eq!(step(&buy, &bar(105.0, 106.0, 99.0, 101.0), false), wait);
        let pass = Step::Pass { triggered: false };
        assert_eq!(step(&buy, &bar(105.0, 106.0, 101.0, 102.0), true), pass);
        let sell = order(Side::Sell, OrderType::Limit, 100.0, 0.0);
        let at_limit = Step::Fill {
            price: 100.0,
            at: 7200,
        };
        assert_eq!(step(&sell, &bar(95.0, 101.0, 94.0, 96.0), true), at_limit);
        let at_open = Step::Fill {
            price: 102.0,
            at: 3600,
        };
        assert_eq!(step(&sell, &bar(102.0, 103.0, 94.0, 96.0), true), at_open);
    }

    #[test]
    fn a_stop_limit_waits_for_its_stop_then_acts_as_a_limit() {
        // Buy stop 110, limit 112.
        let buy = order(Side::Buy, OrderType::StopLimit, 112.0, 110.0);
        let pass = Step::Pass { triggered: false };
        assert_eq!(step(&buy, &bar(100.0, 105.0, 99.0, 101.0), true), pass);
        let at_stop = Step::Fill {
            price: 110.0,
            at: 7200,
        };
        assert_eq!(step(&buy, &bar(100.0, 111.0, 99.0, 101.0), true), at_stop);
        let at_open = Step::Fill {
            price: 111.0,
            at: 3600,
        };
        assert_eq!(step(&buy, &bar(111.0, 115.0, 99.0, 101.0), false), at_open);
        // Gapped above the limit: triggered, not filled.
        let gapped = Step::Pass { triggered: true };
        assert_eq!(step(&buy, &bar(120.0, 121.0, 119.0, 120.0), true), gapped);
        let mut triggered = buy.clone();
        triggered.triggered = true;
        let at_limit = Step::Fill {
            price: 112.0,
            at: 7200,
        };
        assert_eq!(
            step(&triggered, &bar(115.0, 116.0, 111.0, 113.0), true),
            at_limit
        );
        // Sell stop 90, limit 88.
        let sell = order(Side::Sell, OrderType::StopLimit, 88.0, 90.0);
        let at_stop = Step::Fill {
            price: 90.0,
            at: 7200,
        };
        assert_eq!(step(&sell, &bar(95.0, 96.0, 89.0, 92.0), true), at_stop);
    }
}
