//! Paper accounts: orders, fills at the next bar's open, positions, cash.

use std::collections::BTreeMap;

use trader_core::Symbol;

use crate::SimKeys;
use crate::bars::Market;

/// Alpaca's crypto fee, in basis points of the asset received.
pub use trader_core::CRYPTO_FEE_BPS as FEE_BPS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    New,
    Filled,
    Canceled,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) client_order_id: String,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) qty: Option<f64>,
    pub(crate) notional: Option<f64>,
    pub(crate) time_in_force: String,
    pub(crate) created_at: i64,
    pub(crate) status: Status,
    pub(crate) filled_qty: f64,
    pub(crate) filled_avg_price: Option<f64>,
    pub(crate) filled_at: Option<i64>,
    pub(crate) updated_at: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Position {
    pub(crate) qty: f64,
    /// USD paid for the quantity held.
    pub(crate) cost: f64,
}

pub(crate) struct Account {
    pub(crate) id: String,
    secret: String,
    pub(crate) cash: f64,
    pub(crate) positions: BTreeMap<Symbol, Position>,
    pub(crate) orders: Vec<Order>,
    /// Account number, for order ids unique across accounts.
    number: u64,
}

// Alpaca's numeric error codes, by HTTP status.
pub(crate) const CODE_INVALID: u32 = 40_010_001;
pub(crate) const CODE_UNAUTHORIZED: u32 = 40_110_000;
pub(crate) const CODE_FORBIDDEN: u32 = 40_310_000;
pub(crate) const CODE_NOT_FOUND: u32 = 40_410_000;
pub(crate) const CODE_NOT_CANCELABLE: u32 = 42_210_000;
pub(crate) const CODE_INTERNAL: u32 = 50_010_000;

/// An API error: HTTP status, Alpaca's numeric code, message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// An order request, already parsed.
pub(crate) struct NewOrder {
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) qty: Option<f64>,
    pub(crate) notional: Option<f64>,
    pub(crate) time_in_force: String,
    pub(crate) client_order_id: Option<String>,
}

pub(crate) struct Broker {
    accounts: BTreeMap<String, Account>,
}

/// A UUID-shaped id (clients parse Alpaca's ids as UUIDs).
fn uuid_like(kind: u16, n: u64) -> String {
    format!("00000000-0000-4{kind:03x}-8000-{n:012x}")
}

impl Broker {
    pub(crate) fn new(keys: &[SimKeys], starting_cash: f64) -> Self {
        let accounts = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.key_id.clone(),
                    Account {
                        id: uuid_like(1, i as u64 + 1),
                        secret: k.secret_key.clone(),
                        cash: starting_cash,
                        positions: BTreeMap::new(),
                        orders: Vec::new(),
                        number: i as u64 + 1,
                    },
                )
            })
            .collect();
        Broker { accounts }
    }

    /// The account of a key pair, with its pending orders settled up to `now`.
    pub(crate) fn account(
        &mut self,
        key_id: &str,
        secret: &str,
        market: &Market,
        now: i64,
    ) -> Result<&mut Account, ApiError> {
        let account = self
            .accounts
            .get_mut(key_id)
            .filter(|a| a.secret == secret)
            .ok_or_else(|| ApiError::new(401, CODE_UNAUTHORIZED, "request is not authorized"))?;
        account.settle(market, now);
        Ok(account)
    }
}

impl Account {
    /// Fills every open order whose next bar has opened by `now`, at that
    /// bar's open, charging the fee on the asset received.
    fn settle(&mut self, market: &Market, now: i64) {
        for i in 0..self.orders.len() {
            let order = &self.orders[i];
            if order.status != Status::New {
                continue;
            }
            // The next bar: the first one starting at or after the order.
            let Some(bar) = market.bar_from(&order.symbol, order.created_at) else {
                continue;
            };
            if bar.t > now {
                continue;
            }
            let price = bar.open;
            let fee = FEE_BPS / 10_000.0;
            let position = self.positions.entry(order.symbol.clone()).or_default();
            let (qty, status) = match order.side {
                Side::Buy => {
                    let spend = order
                        .notional
                        .unwrap_or_else(|| order.qty.unwrap_or(0.0) * price);
                    if spend > self.cash + 1e-9 {
                        (0.0, Status::Canceled)
                    } else {
                        let gross = spend / price;
                        self.cash -= spend;
                        position.qty += gross * (1.0 - fee);
                        position.cost += spend;
                        (gross, Status::Filled)
                    }
                }
                Side::Sell => {
                    let want = order
                        .qty
                        .unwrap_or_else(|| order.notional.unwrap_or(0.0) / price);
                    let qty = want.min(position.qty);
                    if qty <= 0.0 {
                        (0.0, Status::Canceled)
                    } else {
                        let share = qty / position.qty;
                        position.cost -= position.cost * share;
                        position.qty -= qty;
                        self.cash += qty * price * (1.0 - fee);
                        (qty, Status::Filled)
                    }
                }
            };
            if position.qty <= 1e-12 {
                self.positions.remove(&self.orders[i].symbol);
            }
            let order = &mut self.orders[i];
            order.status = status;
            order.updated_at = bar.t;
            if status == Status::Filled {
                order.filled_qty = qty;
                order.filled_avg_price = Some(price);
                order.filled_at = Some(bar.t);
            }
        }
    }

    /// Equity at the last closed prices.
    pub(crate) fn equity(&self, market: &Market, now: i64) -> f64 {
        self.cash
            + self
                .positions
                .iter()
                .map(|(s, p)| p.qty * market.last_closed(s, now).map_or(0.0, |b| b.close))
                .sum::<f64>()
    }

    /// Places a market order (filled at the next bar's open).
    pub(crate) fn submit(
        &mut self,
        req: NewOrder,
        market: &Market,
        now: i64,
    ) -> Result<Order, ApiError> {
        // Numbered per account; rejected requests use no number.
        let id = format!(
            "00000000-{:04x}-4002-8000-{:012x}",
            self.number,
            self.orders.len() + 1
        );
        let client_order_id = req.client_order_id.clone().unwrap_or_else(|| id.clone());
        if client_order_id.is_empty() || client_order_id.len() > 128 {
            return Err(ApiError::new(
                422,
                CODE_INVALID,
                "client_order_id must be 1 to 128 characters",
            ));
        }
        if self
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id)
        {
            return Err(ApiError::new(
                422,
                CODE_INVALID,
                "client_order_id must be unique",
            ));
        }
        if !market.has(&req.symbol) {
            return Err(ApiError::new(
                422,
                CODE_INVALID,
                format!("asset \"{}\" not found", req.symbol),
            ));
        }
        if req.time_in_force != "gtc" && req.time_in_force != "ioc" {
            return Err(ApiError::new(
                422,
                CODE_INVALID,
                format!(
                    "invalid crypto time_in_force {:?} (gtc or ioc)",
                    req.time_in_force
                ),
            ));
        }
        let amount = match (req.qty, req.notional) {
            (Some(q), None) if q > 0.0 && q.is_finite() => q,
            (None, Some(n)) if n > 0.0 && n.is_finite() => n,
            _ => {
                return Err(ApiError::new(
                    422,
                    CODE_INVALID,
                    "exactly one of qty or notional, positive, is required",
                ));
            }
        };
        self.check_funds(&req, amount, market, now)?;
        let order = Order {
            id,
            client_order_id,
            symbol: req.symbol,
            side: req.side,
            qty: req.qty,
            notional: req.notional,
            time_in_force: req.time_in_force,
            created_at: now,
            status: Status::New,
            filled_qty: 0.0,
            filled_avg_price: None,
            filled_at: None,
            updated_at: now,
        };
        self.orders.push(order.clone());
        Ok(order)
    }

    /// Buying power for a buy, quantity held for a sell (403 otherwise);
    /// open buys reserve their cash.
    fn check_funds(
        &self,
        req: &NewOrder,
        amount: f64,
        market: &Market,
        now: i64,
    ) -> Result<(), ApiError> {
        let last = market
            .last_closed(&req.symbol, now)
            .map_or(0.0, |b| b.close);
        let reserved_cash: f64 = self
            .orders
            .iter()
            .filter(|o| o.status == Status::New && o.side == Side::Buy)
            .map(|o| {
                let price = market.last_closed(&o.symbol, now).map_or(0.0, |b| b.close);
                o.notional.unwrap_or_else(|| o.qty.unwrap_or(0.0) * price)
            })
            .sum();
        match req.side {
            Side::Buy => {
                let spend = if req.notional.is_some() {
                    amount
                } else {
                    amount * last
                };
                let available = self.cash - reserved_cash;
                if spend > available {
                    return Err(ApiError::new(
                        403,
                        CODE_FORBIDDEN,
                        format!(
                            "insufficient balance for USD (requested: {spend}, available: {available})"
                        ),
                    ));
                }
            }
            Side::Sell => {
                let qty = if req.qty.is_some() {
                    amount
                } else if last > 0.0 {
                    amount / last
                } else {
                    f64::INFINITY
                };
                // Open sells of the same symbol already spoke for part of it.
                let pending: f64 = self
                    .orders
                    .iter()
                    .filter(|o| {
                        o.status == Status::New && o.side == Side::Sell && o.symbol == req.symbol
                    })
                    .map(|o| {
                        o.qty.unwrap_or_else(|| {
                            o.notional.unwrap_or(0.0) / last.max(f64::MIN_POSITIVE)
                        })
                    })
                    .sum();
                let held = self.positions.get(&req.symbol).map_or(0.0, |p| p.qty) - pending;
                if qty > held + 1e-12 {
                    return Err(ApiError::new(
                        403,
                        CODE_FORBIDDEN,
                        format!(
                            "insufficient balance for {} (requested: {qty}, available: {held})",
                            req.symbol
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Cancels an open order.
    pub(crate) fn cancel(&mut self, id: &str, now: i64) -> Result<(), ApiError> {
        let order = self
            .orders
            .iter_mut()
            .find(|o| o.id == id)
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))?;
        if order.status != Status::New {
            return Err(ApiError::new(
                422,
                CODE_NOT_CANCELABLE,
                format!("order is {}, not cancelable", order.status.as_str()),
            ));
        }
        order.status = Status::Canceled;
        order.updated_at = now;
        Ok(())
    }
}
