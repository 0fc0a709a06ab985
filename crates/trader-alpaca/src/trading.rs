//! Trading through apca, wrapped: limiter, timeout, retries for reads, and
//! the placement protocol that never buys twice.
//!
//! Placement: `POST /v2/orders` with the caller's `client_order_id`.
//! - 200: placed.
//! - 422: maybe a duplicate (Alpaca answers 422 to a reused id even after the
//!   first order is done): look the id up; if an order is there, adopt it,
//!   otherwise the 422 was a real rejection and is returned.
//! - timeout, dropped connection, 5xx or malformed answer: the order may or
//!   may not have been accepted. Look the id up; adopt what is there, or send
//!   the same request again after a backoff. Because the id is the same, at
//!   most one of the copies can be accepted; a late one is answered 422 and
//!   adopted.
//! - 429: not accepted; wait and send again.
//! - 401/403 and other 4xx: returned at once.

use std::str::FromStr;

use apca::RequestError;
use apca::api::v2::{account, asset, clock, order, orders, position, positions};
use num_decimal::Num;
use trader_core::{
    AccountState, Broker, ErrorKind, MarketError, Order, OrderAmount, OrderRequest, OrderStatus,
    Placement, Position, Side, Symbol,
};

use crate::client::AlpacaClient;
use crate::data::error_message;
use crate::symbols;

/// An error and its sources, `: `-separated (apca's own messages are
/// generic, the cause is in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn api_message(m: &Result<apca::ApiError, Vec<u8>>) -> String {
    match m {
        Ok(e) => e.message.clone(),
        Err(body) => error_message(body),
    }
}

/// Maps apca's error of one endpoint (`$m::$ty` is its error enum; the
/// listed variants are its endpoint-specific statuses) to a [`MarketError`].
macro_rules! classify {
    ($request:expr, $err:expr, $m:ident::$ty:ident { $($variant:ident => $kind:expr, $status:expr);* $(;)? }) => {
        match $err {
            RequestError::Endpoint(e) => match e {
                $m::$ty::AuthenticationFailed(m) => {
                    MarketError::new(ErrorKind::Unauthorized, $request, api_message(&m)).with_status(401)
                }
                $m::$ty::RateLimitExceeded(m) => {
                    MarketError::new(ErrorKind::RateLimited, $request, api_message(&m)).with_status(429)
                }
                $($m::$ty::$variant(m) => {
                    MarketError::new($kind, $request, api_message(&m)).with_status($status)
                })*
                $m::$ty::UnexpectedStatus(status, m) => MarketError::new(
                    MarketError::kind_of_status(status.as_u16()),
                    $request,
                    format!("HTTP {}: {}", status.as_u16(), api_message(&m)),
                )
                .with_status(status.as_u16()),
                $m::$ty::Http(e) => MarketError::new(ErrorKind::Connection, $request, error_chain(&e)),
                $m::$ty::Conversion(e) => {
                    MarketError::new(ErrorKind::Malformed, $request, error_chain(&e))
                }
            },
            RequestError::Hyper(e) => MarketError::new(ErrorKind::Connection, $request, error_chain(&e)),
            RequestError::HyperUtil(e) => {
                MarketError::new(ErrorKind::Connection, $request, error_chain(&e))
            }
            RequestError::Io(e) => MarketError::new(ErrorKind::Connection, $request, error_chain(&e)),
        }
    };
}

fn num(v: &Num, field: &str, request: &str) -> Result<f64, MarketError> {
    v.to_f64().filter(|x| x.is_finite()).ok_or_else(|| {
        MarketError::new(
            ErrorKind::Malformed,
            request,
            format!("{field} {v} is not a finite number"),
        )
    })
}

fn to_num(v: f64, field: &str) -> Result<Num, MarketError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(MarketError::new(
            ErrorKind::Rejected,
            "POST /v2/orders",
            format!("{field} {v} must be a positive number"),
        ));
    }
    // Eight decimals (what apca's decimal strings carry), rounded down so a
    // sale never asks for more than is held.
    Num::from_str(&format!("{:.8}", (v * 1e8).floor() / 1e8)).map_err(|e| {
        MarketError::new(
            ErrorKind::Rejected,
            "POST /v2/orders",
            format!("{field} {v}: {e}"),
        )
    })
}

fn status(s: order::Status) -> OrderStatus {
    use order::Status as S;
    match s {
        S::New
        | S::Accepted
        | S::PendingNew
        | S::AcceptedForBidding
        | S::PendingCancel
        | S::PendingReplace
        | S::Replaced
        | S::DoneForDay
        | S::Stopped
        | S::Calculated
        | S::Suspended => OrderStatus::Open,
        S::PartiallyFilled => OrderStatus::PartiallyFilled,
        S::Filled => OrderStatus::Filled,
        S::Canceled => OrderStatus::Canceled,
        S::Expired => OrderStatus::Expired,
        S::Rejected => OrderStatus::Rejected,
        other => OrderStatus::Other(format!("{other:?}")),
    }
}

fn to_order(o: &order::Order, request: &str) -> Result<Order, MarketError> {
    let crypto = matches!(o.asset_class, asset::Class::Crypto);
    Ok(Order {
        id: o.id.0.to_string(),
        client_order_id: o.client_order_id.clone(),
        symbol: symbols::parse(&o.symbol, crypto, request)?,
        side: match o.side {
            order::Side::Buy => Side::Buy,
            order::Side::Sell => Side::Sell,
        },
        amount: match &o.amount {
            order::Amount::Quantity { quantity } => {
                OrderAmount::Qty(num(quantity, "qty", request)?)
            }
            order::Amount::Notional { notional } => {
                OrderAmount::Notional(num(notional, "notional", request)?)
            }
        },
        status: status(o.status),
        filled_qty: num(&o.filled_quantity, "filled_qty", request)?,
        filled_avg_price: o
            .average_fill_price
            .as_ref()
            .map(|p| num(p, "filled_avg_price", request))
            .transpose()?,
        created_at: o.created_at.timestamp(),
        filled_at: o.filled_at.map(|t| t.timestamp()),
    })
}

fn to_position(p: &position::Position, request: &str) -> Result<Position, MarketError> {
    let crypto = matches!(p.asset_class, asset::Class::Crypto);
    Ok(Position {
        symbol: symbols::parse(&p.symbol, crypto, request)?,
        qty: num(&p.quantity, "qty", request)?,
        avg_entry_price: num(&p.average_entry_price, "avg_entry_price", request)?,
        market_value: p
            .market_value
            .as_ref()
            .map(|v| num(v, "market_value", request))
            .transpose()?
            .unwrap_or(0.0),
    })
}

impl AlpacaClient {
    /// The broker's time (`GET /v2/clock`), epoch milliseconds: real time
    /// at Alpaca, the replay time of a simulator.
    pub async fn broker_time_ms(&self) -> Result<i64, MarketError> {
        let request = "GET /v2/clock";
        let c = self
            .idempotent(request, || async {
                self.inner
                    .trading
                    .issue::<clock::Get>(&())
                    .await
                    .map_err(|e| classify!(request, e, clock::GetError {}))
            })
            .await?;
        Ok(c.current.timestamp_millis())
    }

    /// The position in one symbol (`GET /v2/positions/BTCUSD`), `None` when
    /// flat.
    pub async fn position(&self, symbol: &Symbol) -> Result<Option<Position>, MarketError> {
        let path_symbol = symbols::position_symbol(symbol);
        let request = format!("GET /v2/positions/{path_symbol}");
        let input = asset::Symbol::Sym(path_symbol);
        let found = self
            .idempotent(&request, || async {
                match self.inner.trading.issue::<position::Get>(&input).await {
                    Ok(p) => Ok(Some(p)),
                    Err(RequestError::Endpoint(position::GetError::NotFound(_))) => Ok(None),
                    Err(e) => Err(classify!(&request, e, position::GetError {
                        NotFound => ErrorKind::NotFound, 404;
                    })),
                }
            })
            .await?;
        found.map(|p| to_position(&p, &request)).transpose()
    }

    async fn create(&self, req: &OrderRequest, request: &str) -> Result<Order, MarketError> {
        let amount = match req.amount {
            OrderAmount::Qty(q) => order::Amount::quantity(to_num(q, "qty")?),
            OrderAmount::Notional(n) => order::Amount::notional(to_num(n, "notional")?),
        };
        let side = match req.side {
            Side::Buy => order::Side::Buy,
            Side::Sell => order::Side::Sell,
        };
        let create = order::CreateReqInit {
            type_: order::Type::Market,
            // Crypto takes gtc or ioc only.
            time_in_force: order::TimeInForce::UntilCanceled,
            client_order_id: Some(req.client_order_id.clone()),
            ..Default::default()
        }
        .init(symbols::api_symbol(&req.symbol), side, amount);
        let o = self
            .inner
            .trading
            .issue::<order::Create>(&create)
            .await
            .map_err(|e| {
                classify!(request, e, order::CreateError {
                    NotPermitted => ErrorKind::Rejected, 403;
                    InvalidInput => ErrorKind::Rejected, 422;
                })
            })?;
        to_order(&o, request)
    }
}

impl Broker for AlpacaClient {
    async fn account(&self) -> Result<AccountState, MarketError> {
        let request = "GET /v2/account";
        let a = self
            .idempotent(request, || async {
                self.inner
                    .trading
                    .issue::<account::Get>(&())
                    .await
                    .map_err(|e| classify!(request, e, account::GetError {}))
            })
            .await?;
        Ok(AccountState {
            cash: num(&a.cash, "cash", request)?,
            equity: num(&a.equity, "equity", request)?,
            buying_power: num(&a.buying_power, "buying_power", request)?,
        })
    }

    async fn positions(&self) -> Result<Vec<Position>, MarketError> {
        let request = "GET /v2/positions";
        let list = self
            .idempotent(request, || async {
                self.inner
                    .trading
                    .issue::<positions::List>(&())
                    .await
                    .map_err(|e| classify!(request, e, positions::ListError {}))
            })
            .await?;
        list.iter().map(|p| to_position(p, request)).collect()
    }

    async fn open_orders(&self) -> Result<Vec<Order>, MarketError> {
        let request = "GET /v2/orders?status=open";
        let query = orders::ListReq {
            status: orders::Status::Open,
            limit: Some(500),
            ..Default::default()
        };
        let list = self
            .idempotent(request, || async {
                self.inner
                    .trading
                    .issue::<orders::List>(&query)
                    .await
                    .map_err(|e| classify!(request, e, orders::ListError {}))
            })
            .await?;
        list.iter().map(|o| to_order(o, request)).collect()
    }

    async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<Order>, MarketError> {
        let request = format!("GET /v2/orders:by_client_order_id {client_order_id}");
        let id = client_order_id.to_owned();
        let found = self
            .idempotent(&request, || async {
                match self.inner.trading.issue::<order::GetByClientId>(&id).await {
                    Ok(o) => Ok(Some(o)),
                    Err(RequestError::Endpoint(order::GetByClientIdError::NotFound(_))) => Ok(None),
                    Err(e) => Err(classify!(&request, e, order::GetByClientIdError {
                        NotFound => ErrorKind::NotFound, 404;
                    })),
                }
            })
            .await?;
        found.map(|o| to_order(&o, &request)).transpose()
    }

    async fn place(&self, req: &OrderRequest) -> Result<Placement, MarketError> {
        let request = format!("POST /v2/orders {}", req.client_order_id);
        let mut backoff = self.placement_backoff();
        loop {
            let err = match self.attempt(&request, self.create(req, &request)).await {
                Ok(order) => {
                    return Ok(Placement {
                        order,
                        adopted: false,
                    });
                }
                Err(e) => e,
            };
            let unsure = err.kind.is_transient() && err.kind != ErrorKind::RateLimited;
            if err.status == Some(422) || unsure {
                if let Some(order) = self.order_by_client_id(&req.client_order_id).await? {
                    tracing::info!(
                        client_order_id = %req.client_order_id,
                        after = err.kind.as_str(),
                        "order already at the broker; adopted"
                    );
                    self.inner
                        .adopted
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Placement {
                        order,
                        adopted: true,
                    });
                }
                if err.status == Some(422) {
                    return Err(err);
                }
            } else if !err.kind.is_transient() {
                return Err(err);
            }
            let Some(wait) = backoff.next() else {
                return Err(err);
            };
            let wait = err.retry_after.map_or(wait, |r| r.max(wait));
            tracing::warn!(
                request,
                kind = err.kind.as_str(),
                error = %err.detail,
                retry_in_ms = wait.as_millis() as u64,
                "order not confirmed; sending it again with the same client_order_id"
            );
            tokio::time::sleep(wait).await;
        }
    }
}
