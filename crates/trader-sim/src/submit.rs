//! Accepting orders: checks (client order id, asset, type, prices, time in
//! force, buying power or quantity held), replacing an open order, and
//! closing a position with a market sell.

use trader_core::Symbol;

use crate::bars::Market;
use crate::broker::{
    Account, ApiError, CODE_FORBIDDEN, CODE_INVALID, CODE_NOT_FOUND, NewOrder, Order, OrderType,
    Side, Status, TimeInForce,
};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(422, CODE_INVALID, message)
}

/// What `PATCH /v2/orders/{id}` may change.
#[derive(Debug, Default)]
pub(crate) struct Replacement {
    pub(crate) qty: Option<f64>,
    pub(crate) limit_price: Option<f64>,
    pub(crate) stop_price: Option<f64>,
    pub(crate) time_in_force: Option<TimeInForce>,
    pub(crate) client_order_id: Option<String>,
}

/// The prices an order type needs, positive and finite; no others.
fn check_prices(req: &NewOrder) -> Result<(), ApiError> {
    let positive = |name: &str, v: Option<f64>| match v {
        Some(p) if p > 0.0 && p.is_finite() => Ok(()),
        Some(p) => Err(invalid(format!("{name} {p} must be positive"))),
        None => Err(invalid(format!(
            "{name} is required for {} orders",
            req.order_type.as_str()
        ))),
    };
    let absent = |name: &str, v: Option<f64>| match v {
        None => Ok(()),
        Some(_) => Err(invalid(format!(
            "{name} is not allowed for {} orders",
            req.order_type.as_str()
        ))),
    };
    match req.order_type {
        OrderType::Market => {
            absent("limit_price", req.limit_price)?;
            absent("stop_price", req.stop_price)
        }
        OrderType::Limit => {
            positive("limit_price", req.limit_price)?;
            absent("stop_price", req.stop_price)
        }
        OrderType::StopLimit => {
            positive("limit_price", req.limit_price)?;
            positive("stop_price", req.stop_price)
        }
    }?;
    if req.notional.is_some() && req.order_type != OrderType::Market {
        return Err(invalid("notional is only for market orders; give qty"));
    }
    Ok(())
}

impl Account {
    /// Accepts an order (filled later by the bars, `fills.rs`).
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
            return Err(invalid("client_order_id must be 1 to 128 characters"));
        }
        if self
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id)
        {
            return Err(invalid("client_order_id must be unique"));
        }
        if !market.has(&req.symbol) {
            return Err(invalid(format!("asset \"{}\" not found", req.symbol)));
        }
        check_prices(&req)?;
        let amount = match (req.qty, req.notional) {
            (Some(q), None) if q > 0.0 && q.is_finite() => q,
            (None, Some(n)) if n > 0.0 && n.is_finite() => n,
            _ => {
                return Err(invalid(
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
            order_type: req.order_type,
            limit_price: req.limit_price,
            stop_price: req.stop_price,
            time_in_force: req.time_in_force,
            created_at: now,
            status: Status::New,
            filled_qty: 0.0,
            filled_avg_price: None,
            filled_at: None,
            updated_at: now,
            canceled_at: None,
            replaced_at: None,
            replaced_by: None,
            replaces: None,
            triggered: false,
            next_bar: now,
        };
        self.orders.push(order.clone());
        Ok(order)
    }

    /// USD an open buy speaks for: its notional, or its quantity at its
    /// limit (market orders: at the last close).
    fn reserved(o: &Order, market: &Market, now: i64) -> f64 {
        let price = o
            .limit_price
            .unwrap_or_else(|| market.last_closed(&o.symbol, now).map_or(0.0, |b| b.close));
        o.notional.unwrap_or_else(|| o.qty.unwrap_or(0.0) * price)
    }

    /// Buying power for a buy, quantity held for a sell (403 otherwise);
    /// open buys reserve their cash, open sells their quantity.
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
        match req.side {
            Side::Buy => {
                let reserved_cash: f64 = self
                    .orders
                    .iter()
                    .filter(|o| o.status == Status::New && o.side == Side::Buy)
                    .map(|o| Self::reserved(o, market, now))
                    .sum();
                let spend = if req.notional.is_some() {
                    amount
                } else {
                    amount * req.limit_price.unwrap_or(last)
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

    /// Replaces an open limit or stop-limit order with a new one (Alpaca's
    /// `PATCH /v2/orders/{id}`): the old one becomes `replaced`.
    pub(crate) fn replace(
        &mut self,
        id: &str,
        change: Replacement,
        market: &Market,
        now: i64,
    ) -> Result<Order, ApiError> {
        let i = self
            .orders
            .iter()
            .position(|o| o.id == id)
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))?;
        let old = self.orders[i].clone();
        if old.status != Status::New {
            return Err(invalid(format!(
                "order is {}, not replaceable",
                old.status.as_str()
            )));
        }
        if old.order_type == OrderType::Market {
            return Err(invalid("a market order cannot be replaced"));
        }
        let req = NewOrder {
            symbol: old.symbol.clone(),
            side: old.side,
            qty: change.qty.or(old.qty),
            notional: None,
            order_type: old.order_type,
            limit_price: change.limit_price.or(old.limit_price),
            stop_price: change.stop_price.or(old.stop_price),
            time_in_force: change.time_in_force.unwrap_or(old.time_in_force),
            client_order_id: change.client_order_id,
        };
        // The old order's reservation is freed for the check.
        self.orders[i].status = Status::Replaced;
        match self.submit(req, market, now) {
            Ok(mut new) => {
                new.replaces = Some(old.id.clone());
                if let Some(last) = self.orders.last_mut() {
                    last.replaces = Some(old.id.clone());
                }
                let o = &mut self.orders[i];
                o.replaced_at = Some(now);
                o.replaced_by = Some(new.id.clone());
                o.updated_at = now;
                Ok(new)
            }
            Err(e) => {
                self.orders[i].status = Status::New;
                Err(e)
            }
        }
    }

    /// Closes (part of) a position with a market sell: `qty`, or
    /// `percentage` of what is held, or all of it.
    pub(crate) fn close_position(
        &mut self,
        symbol: &Symbol,
        qty: Option<f64>,
        percentage: Option<f64>,
        market: &Market,
        now: i64,
    ) -> Result<Order, ApiError> {
        let held = self
            .positions
            .get(symbol)
            .map(|p| p.qty)
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "position does not exist"))?;
        let qty = match (qty, percentage) {
            (Some(q), None) => q,
            (None, Some(p)) if p > 0.0 && p <= 100.0 => held * p / 100.0,
            (None, Some(p)) => return Err(invalid(format!("percentage {p} must be in (0, 100]"))),
            (None, None) => held,
            (Some(_), Some(_)) => return Err(invalid("give qty or percentage, not both")),
        };
        self.submit(
            NewOrder::market(symbol.clone(), Side::Sell, Some(qty), None, None),
            market,
            now,
        )
    }
}
