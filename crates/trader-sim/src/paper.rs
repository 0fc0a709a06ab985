//! [`PaperBroker`]: the simulator's accounts and fill model in process, as a
//! [`trader_core::Broker`], for backtests. The same code fills orders here
//! and behind the HTTP simulator, so a backtest and a replay cannot drift
//! apart on fills.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use trader_core::{
    AccountState, Bar, Clock, ErrorKind, MarketError, Order, OrderAmount, OrderRequest,
    OrderStatus, Placement, Position, Symbol,
};

use crate::SimKeys;
use crate::bars::{BarsQuery, Market};
use crate::broker::{self, ApiError, Broker, NewOrder, Status};

const KEY: &str = "PKPAPER";
const SECRET: &str = "paper";

/// One paper account over recorded bars, in process.
pub struct PaperBroker {
    state: Mutex<(Broker, Market)>,
    clock: Arc<dyn Clock>,
}

fn core_order(o: &broker::Order) -> Order {
    Order {
        id: o.id.clone(),
        client_order_id: o.client_order_id.clone(),
        symbol: o.symbol.clone(),
        side: match o.side {
            broker::Side::Buy => trader_core::Side::Buy,
            broker::Side::Sell => trader_core::Side::Sell,
        },
        amount: match (o.qty, o.notional) {
            (Some(q), _) => OrderAmount::Qty(q),
            (None, n) => OrderAmount::Notional(n.unwrap_or(0.0)),
        },
        status: match o.status {
            Status::New => OrderStatus::Open,
            Status::Filled => OrderStatus::Filled,
            Status::Canceled => OrderStatus::Canceled,
            Status::Replaced => OrderStatus::Other("replaced".to_owned()),
        },
        filled_qty: o.filled_qty,
        filled_avg_price: o.filled_avg_price,
        created_at: o.created_at,
        filled_at: o.filled_at,
    }
}

fn market_error(e: &ApiError, request: &str) -> MarketError {
    MarketError::new(
        MarketError::kind_of_status(e.status),
        request,
        e.message.clone(),
    )
    .with_status(e.status)
}

impl PaperBroker {
    /// An account with `starting_cash` USD over `bars`, on `clock`.
    #[must_use]
    pub fn new(
        bars: BTreeMap<Symbol, Vec<Bar>>,
        starting_cash: f64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let keys = [SimKeys {
            key_id: KEY.to_owned(),
            secret_key: SECRET.to_owned(),
        }];
        PaperBroker {
            state: Mutex::new((Broker::new(&keys, starting_cash), Market::new(bars))),
            clock,
        }
    }

    /// Runs `f` on the account, settled up to the clock's now.
    fn with_account<T>(
        &self,
        request: &str,
        f: impl FnOnce(&mut broker::Account, &Market, i64) -> Result<T, ApiError>,
    ) -> Result<T, MarketError> {
        let now = self.clock.now().timestamp();
        let mut state = self.state.lock().map_err(|_| {
            MarketError::new(ErrorKind::Server, request, "paper broker state poisoned")
        })?;
        let (broker, market) = &mut *state;
        let account = broker
            .account(KEY, SECRET, market, now)
            .map_err(|e| market_error(&e, request))?;
        f(account, market, now).map_err(|e| market_error(&e, request))
    }
}

impl trader_core::Broker for PaperBroker {
    async fn account(&self) -> Result<AccountState, MarketError> {
        self.with_account("account", |a, m, now| {
            Ok(AccountState {
                cash: a.cash,
                equity: a.equity(m, now),
                buying_power: a.cash,
            })
        })
    }

    async fn positions(&self) -> Result<Vec<Position>, MarketError> {
        self.with_account("positions", |a, m, now| {
            Ok(a.positions
                .iter()
                .map(|(s, p)| Position {
                    symbol: s.clone(),
                    qty: p.qty,
                    avg_entry_price: if p.qty > 0.0 { p.cost / p.qty } else { 0.0 },
                    market_value: p.qty * m.last_closed(s, now).map_or(0.0, |b| b.close),
                })
                .collect())
        })
    }

    async fn open_orders(&self) -> Result<Vec<Order>, MarketError> {
        self.with_account("open orders", |a, _, _| {
            Ok(a.orders
                .iter()
                .filter(|o| o.status == Status::New)
                .map(core_order)
                .collect())
        })
    }

    async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<Order>, MarketError> {
        self.with_account("order by client id", |a, _, _| {
            Ok(a.orders
                .iter()
                .find(|o| o.client_order_id == client_order_id)
                .map(core_order))
        })
    }

    async fn place(&self, req: &OrderRequest) -> Result<Placement, MarketError> {
        let (qty, notional) = match req.amount {
            OrderAmount::Qty(q) => (Some(q), None),
            OrderAmount::Notional(n) => (None, Some(n)),
        };
        let new = NewOrder::market(
            req.symbol.clone(),
            match req.side {
                trader_core::Side::Buy => broker::Side::Buy,
                trader_core::Side::Sell => broker::Side::Sell,
            },
            qty,
            notional,
            Some(req.client_order_id.clone()),
        );
        let request = format!("place {}", req.client_order_id);
        self.with_account(&request, |a, m, now| {
            if let Some(o) = a
                .orders
                .iter()
                .find(|o| o.client_order_id == req.client_order_id)
            {
                return Ok(Placement {
                    order: core_order(o),
                    adopted: true,
                });
            }
            a.submit(new, m, now).map(|o| Placement {
                order: core_order(&o),
                adopted: false,
            })
        })
    }
}

/// The recorded bars closed by the clock's now, as Alpaca's bars endpoint
/// serves them (`start..=end`), so the live loop can run in process.
impl trader_core::MarketData for PaperBroker {
    async fn bars(
        &self,
        symbols: &[Symbol],
        start: i64,
        end: i64,
    ) -> Result<trader_core::BarsBySymbol, MarketError> {
        let now = self.clock.now().timestamp();
        let state = self.state.lock().map_err(|_| {
            MarketError::new(ErrorKind::Server, "bars", "paper broker state poisoned")
        })?;
        let page = state.1.query(
            &BarsQuery {
                symbols: symbols.to_vec(),
                start: Some(start),
                end: Some(end),
                limit: usize::MAX,
                page_token: None,
            },
            now,
        );
        Ok(page.bars)
    }
}
