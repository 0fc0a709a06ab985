//! Paper accounts: their orders, fills, positions and cash, the key pairs
//! that open them, and the API's errors. How orders are accepted
//! (`submit.rs`) and filled by the recorded bars (`fills.rs`) live beside.

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

impl Side {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    New,
    Filled,
    Canceled,
    /// Replaced by another order (`PATCH /v2/orders/{id}`).
    Replaced,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
            Status::Replaced => "replaced",
        }
    }
}

/// The order types Alpaca offers for crypto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderType {
    Market,
    Limit,
    StopLimit,
}

impl OrderType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::StopLimit => "stop_limit",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "market" => Some(OrderType::Market),
            "limit" => Some(OrderType::Limit),
            "stop_limit" => Some(OrderType::StopLimit),
            _ => None,
        }
    }
}

/// Good till canceled, or immediate or cancel (the next bar's open only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeInForce {
    Gtc,
    Ioc,
}

impl TimeInForce {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "gtc" => Some(TimeInForce::Gtc),
            "ioc" => Some(TimeInForce::Ioc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
#[allow(clippy::struct_field_names)] // Alpaca's own name: order_type
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) client_order_id: String,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) qty: Option<f64>,
    pub(crate) notional: Option<f64>,
    pub(crate) order_type: OrderType,
    pub(crate) limit_price: Option<f64>,
    pub(crate) stop_price: Option<f64>,
    pub(crate) time_in_force: TimeInForce,
    pub(crate) created_at: i64,
    pub(crate) status: Status,
    pub(crate) filled_qty: f64,
    pub(crate) filled_avg_price: Option<f64>,
    pub(crate) filled_at: Option<i64>,
    pub(crate) updated_at: i64,
    pub(crate) canceled_at: Option<i64>,
    pub(crate) replaced_at: Option<i64>,
    pub(crate) replaced_by: Option<String>,
    pub(crate) replaces: Option<String>,
    /// A stop-limit whose stop price has been reached (now a limit order).
    pub(crate) triggered: bool,
    /// The first bar not yet looked at for a fill starts at or after this.
    pub(crate) next_bar: i64,
}

/// One execution, for `GET /v2/account/activities`.
#[derive(Debug, Clone)]
pub(crate) struct Fill {
    pub(crate) id: String,
    pub(crate) order_id: String,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) qty: f64,
    pub(crate) price: f64,
    pub(crate) t: i64,
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
    pub(crate) fills: Vec<Fill>,
    /// Account number, for order ids unique across accounts.
    pub(crate) number: u64,
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
#[allow(clippy::struct_field_names)]
pub(crate) struct NewOrder {
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) qty: Option<f64>,
    pub(crate) notional: Option<f64>,
    pub(crate) order_type: OrderType,
    pub(crate) limit_price: Option<f64>,
    pub(crate) stop_price: Option<f64>,
    pub(crate) time_in_force: TimeInForce,
    pub(crate) client_order_id: Option<String>,
}

impl NewOrder {
    /// A market order good till canceled.
    pub(crate) fn market(
        symbol: Symbol,
        side: Side,
        qty: Option<f64>,
        notional: Option<f64>,
        client_order_id: Option<String>,
    ) -> Self {
        NewOrder {
            symbol,
            side,
            qty,
            notional,
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            time_in_force: TimeInForce::Gtc,
            client_order_id,
        }
    }
}

pub(crate) struct Broker {
    accounts: BTreeMap<String, Account>,
}

/// A UUID-shaped id (clients parse Alpaca's ids as UUIDs).
pub(crate) fn uuid_like(kind: u16, n: u64) -> String {
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
                        fills: Vec::new(),
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
    /// Equity at the last closed prices.
    pub(crate) fn equity(&self, market: &Market, now: i64) -> f64 {
        trader_core::paper_equity(
            self.cash,
            self.positions
                .iter()
                .map(|(s, p)| p.qty * market.last_closed(s, now).map_or(0.0, |b| b.close)),
        )
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
        order.canceled_at = Some(now);
        Ok(())
    }

    /// Cancels every open order; their ids, oldest first.
    pub(crate) fn cancel_open(&mut self, now: i64) -> Vec<String> {
        let mut ids = Vec::new();
        for order in self.orders.iter_mut().filter(|o| o.status == Status::New) {
            order.status = Status::Canceled;
            order.updated_at = now;
            order.canceled_at = Some(now);
            ids.push(order.id.clone());
        }
        ids
    }
}
