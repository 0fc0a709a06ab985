//! What the engine needs from a market: closed bars ([`MarketData`]) and a
//! paper account ([`Broker`]), with their domain types. Implemented by the
//! Alpaca client (against Alpaca or the simulator) and, for backtests, by an
//! in-process broker; the engine sees only these traits.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::{Bar, Symbol};

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl serde::Serialize for Side {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Side {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// How much a market order trades: a quantity of the asset or a USD amount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderAmount {
    Qty(f64),
    Notional(f64),
}

/// A market order to place. `client_order_id` is the idempotency key: the
/// same intent always carries the same id, so a retried or re-decided order
/// can be recognised by the broker (Alpaca answers 422 to a duplicate).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub amount: OrderAmount,
}

/// Where an order stands, as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted and waiting (Alpaca: new, accepted, pending_new, ...).
    Open,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Rejected,
    /// A status this program does not know, kept verbatim.
    Other(String),
}

impl OrderStatus {
    /// Whether the order can still fill.
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(self, OrderStatus::Open | OrderStatus::PartiallyFilled)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Other(s) => s,
        }
    }
}

/// An order as the broker knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The broker's id.
    pub id: String,
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub amount: OrderAmount,
    pub status: OrderStatus,
    pub filled_qty: f64,
    pub filled_avg_price: Option<f64>,
    /// Epoch seconds.
    pub created_at: i64,
    pub filled_at: Option<i64>,
}

/// The answer to a placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub order: Order,
    /// True when the broker already had an order with this
    /// `client_order_id` (a retry after a lost answer, or a restart) and
    /// that order was adopted instead of placing a second one.
    pub adopted: bool,
}

/// A held position (long only here).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub symbol: Symbol,
    pub qty: f64,
    pub avg_entry_price: f64,
    pub market_value: f64,
}

/// Cash and value of the account, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountState {
    pub cash: f64,
    pub equity: f64,
    pub buying_power: f64,
}

/// Why a call to the market failed, in the categories the retry policy and
/// the metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No answer within the client's timeout.
    Timeout,
    /// Connecting failed or the connection dropped mid-answer.
    Connection,
    /// 429 from the server.
    RateLimited,
    /// A 5xx answer.
    Server,
    /// An answer that is not the JSON expected.
    Malformed,
    /// 401/403 on authentication: wrong keys.
    Unauthorized,
    /// A 4xx the caller caused (invalid order, insufficient funds, ...).
    Rejected,
    /// 404: no such order, position or asset.
    NotFound,
}

impl ErrorKind {
    /// Whether the same request may succeed if sent again.
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Malformed
        )
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Rejected => "rejected",
            ErrorKind::NotFound => "not_found",
        }
    }
}

/// A failed call: its kind, what was asked, and what came back. Never
/// carries credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketError {
    pub kind: ErrorKind,
    /// What was asked, e.g. `GET /v2/account`.
    pub request: String,
    /// The server's message or the transport's error.
    pub detail: String,
    /// The HTTP status, when an answer came back.
    pub status: Option<u16>,
    /// How long the server asked us to wait (from `X-RateLimit-Reset`).
    pub retry_after: Option<Duration>,
}

impl MarketError {
    #[must_use]
    pub fn new(kind: ErrorKind, request: impl Into<String>, detail: impl Into<String>) -> Self {
        MarketError {
            kind,
            request: request.into(),
            detail: detail.into(),
            status: None,
            retry_after: None,
        }
    }

    /// The same error, with the HTTP status that came back.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The kind an HTTP error status stands for.
    #[must_use]
    pub fn kind_of_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::Rejected,
        }
    }
}

impl fmt::Display for MarketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.request,
            self.detail,
            self.kind.as_str()
        )
    }
}

impl std::error::Error for MarketError {}

/// Bars per symbol, oldest first.
pub type BarsBySymbol = BTreeMap<Symbol, Vec<Bar>>;

/// Historical bars. `start`/`end` are epoch seconds of bar open times, both
/// inclusive; an implementation pages until it has everything in range.
pub trait MarketData: Send + Sync {
    fn bars(
        &self,
        symbols: &[Symbol],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<BarsBySymbol, MarketError>> + Send;
}

/// Alpaca's crypto fee, basis points of the traded notional: the simulator
/// charges it, the engine leaves room for it and records it on fills.
pub const CRYPTO_FEE_BPS: f64 = 25.0;

/// The cash a paper account starts with (the simulator's accounts, the
/// in-process paper broker of backtests, and their reports).
pub const PAPER_STARTING_CASH: f64 = 100_000.0;

/// What a paper account is worth: its cash plus each position's value
/// (quantity x last close), summed in the order given (the simulator's
/// positions, in symbol order). The simulator values its accounts with it,
/// and a backtest assumes it when it decides hours ahead
/// (`trader-engine/src/projection.rs`), so both sum alike to the bit.
#[must_use]
pub fn paper_equity(cash: f64, position_values: impl IntoIterator<Item = f64>) -> f64 {
    cash + position_values.into_iter().sum::<f64>()
}

/// A paper (or live) account.
pub trait Broker: Send + Sync {
    fn account(&self) -> impl Future<Output = Result<AccountState, MarketError>> + Send;

    fn positions(&self) -> impl Future<Output = Result<Vec<Position>, MarketError>> + Send;

    fn open_orders(&self) -> impl Future<Output = Result<Vec<Order>, MarketError>> + Send;

    /// The order with this `client_order_id`, if the broker has one.
    fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> impl Future<Output = Result<Option<Order>, MarketError>> + Send;

    /// Places `order` at most once: an implementation that cannot tell
    /// whether a placement went through looks the id up and adopts what is
    /// there instead of sending it again blindly.
    fn place(
        &self,
        order: &OrderRequest,
    ) -> impl Future<Output = Result<Placement, MarketError>> + Send;
}

/// A shared market (one broker or feed behind several owners: an engine
/// stopped and rebuilt on the same account, for one).
impl<T: MarketData + ?Sized> MarketData for std::sync::Arc<T> {
    fn bars(
        &self,
        symbols: &[Symbol],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<BarsBySymbol, MarketError>> + Send {
        T::bars(self, symbols, start, end)
    }
}

/// A shared broker (one account behind several owners).
impl<T: Broker + ?Sized> Broker for std::sync::Arc<T> {
    fn account(&self) -> impl Future<Output = Result<AccountState, MarketError>> + Send {
        T::account(self)
    }

    fn positions(&self) -> impl Future<Output = Result<Vec<Position>, MarketError>> + Send {
        T::positions(self)
    }

    fn open_orders(&self) -> impl Future<Output = Result<Vec<Order>, MarketError>> + Send {
        T::open_orders(self)
    }

    fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> impl Future<Output = Result<Option<Order>, MarketError>> + Send {
        T::order_by_client_id(self, client_order_id)
    }

    fn place(
        &self,
        order: &OrderRequest,
    ) -> impl Future<Output = Result<Placement, MarketError>> + Send {
        T::place(self, order)
    }
}
