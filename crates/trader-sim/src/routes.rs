//! The HTTP routes.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::DateTime;
use trader_core::{Clock, Symbol};

use crate::bars::{BarsQuery, Market, parse_page_token};
use crate::broker::{
    Account, ApiError, Broker, CODE_INTERNAL, CODE_INVALID, CODE_NOT_FOUND, NewOrder, Side,
};
use crate::{decimal, wire};

pub(crate) struct AppState {
    pub(crate) market: Market,
    pub(crate) broker: Mutex<Broker>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) log: Arc<crate::faults::FaultInjector>,
}

type Shared = State<Arc<AppState>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(wire::error(self.code, &self.message))).into_response()
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/account", get(account))
        .route("/v2/positions", get(positions))
        .route("/v2/positions/{symbol}", get(position))
        .route("/v2/orders", get(list_orders).post(create_order))
        .route("/v2/orders:by_client_order_id", get(order_by_client_id))
        .route("/v2/orders/{id}", get(get_order).delete(cancel_order))
        .route("/v2/clock", get(clock))
        .route("/v2/assets/{symbol}", get(asset))
        .route("/v1beta3/crypto/us/bars", get(bars))
        .route("/v2/stocks/bars", get(bars))
        .with_state(state)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Runs `f` on the caller's account (401 for unknown keys).
fn with_account<T>(
    state: &AppState,
    headers: &HeaderMap,
    f: impl FnOnce(&mut Account, &Market, i64) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let now = state.clock.now().timestamp();
    let mut broker = state
        .broker
        .lock()
        .map_err(|_| ApiError::new(500, CODE_INTERNAL, "broker state poisoned"))?;
    let account = broker.account(
        header(headers, "APCA-API-KEY-ID"),
        header(headers, "APCA-API-SECRET-KEY"),
        &state.market,
        now,
    )?;
    f(account, &state.market, now)
}

/// `BTCUSD`, `BTC/USD` or `BTC%2FUSD` -> `BTC/USD`.
fn parse_symbol(raw: &str) -> Result<Symbol, ApiError> {
    let s = if raw.contains('/') {
        Symbol::from_str(raw)
    } else {
        Symbol::from_file_stem(raw)
    };
    s.map_err(|_| ApiError::new(404, CODE_NOT_FOUND, format!("asset {raw:?} not found")))
}

async fn account(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    with_account(&state, &headers, |a, m, now| {
        Ok(Json(wire::account(a, a.equity(m, now))))
    })
}

async fn positions(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    with_account(&state, &headers, |a, m, now| {
        let list: Vec<serde_json::Value> = a
            .positions
            .iter()
            .map(|(s, p)| wire::position(s, p, m.last_closed(s, now).map_or(0.0, |b| b.close)))
            .collect();
        Ok(Json(serde_json::Value::Array(list)))
    })
}

async fn position(
    State(state): Shared,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let symbol = parse_symbol(&raw)?;
    with_account(&state, &headers, |a, m, now| {
        let p = a
            .positions
            .get(&symbol)
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "position does not exist"))?;
        Ok(Json(wire::position(
            &symbol,
            p,
            m.last_closed(&symbol, now).map_or(0.0, |b| b.close),
        )))
    })
}

/// A string field of the request (422 naming it otherwise).
fn text(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    decimal::field::<String>(obj, name)
}

async fn create_order(
    State(state): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req = decimal::object(&body)?;
    let order_type = text(&req, "type")?.unwrap_or_else(|| "market".to_owned());
    if order_type != "market" {
        return Err(ApiError::new(
            422,
            CODE_INVALID,
            "only market orders are simulated",
        ));
    }
    let side = match text(&req, "side")?.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        other => {
            return Err(ApiError::new(
                422,
                CODE_INVALID,
                format!("invalid side {other:?}"),
            ));
        }
    };
    let symbol = text(&req, "symbol")?
        .ok_or_else(|| ApiError::new(422, CODE_INVALID, "symbol is required"))?;
    let new = NewOrder {
        symbol: parse_symbol(&symbol).map_err(|e| ApiError::new(422, CODE_INVALID, e.message))?,
        side,
        qty: decimal::decimal(&req, "qty")?,
        notional: decimal::decimal(&req, "notional")?,
        time_in_force: text(&req, "time_in_force")?.unwrap_or_else(|| "gtc".to_owned()),
        client_order_id: text(&req, "client_order_id")?,
    };
    with_account(&state, &headers, |a, m, now| {
        let order = a.submit(new, m, now)?;
        state.log.record_order(&order.client_order_id);
        Ok(Json(wire::order(&order)))
    })
}

async fn list_orders(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = q.get("status").map_or("open", String::as_str).to_owned();
    with_account(&state, &headers, |a, _, _| {
        let list: Vec<serde_json::Value> = a
            .orders
            .iter()
            .rev()
            .filter(|o| match status.as_str() {
                "open" => o.status.as_str() == "new",
                "closed" => o.status.as_str() != "new",
                _ => true,
            })
            .map(wire::order)
            .collect();
        Ok(Json(serde_json::Value::Array(list)))
    })
}

async fn get_order(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    with_account(&state, &headers, |a, _, _| {
        a.orders
            .iter()
            .find(|o| o.id == id)
            .map(|o| Json(wire::order(o)))
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))
    })
}

async fn order_by_client_id(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wanted = q.get("client_order_id").cloned().unwrap_or_default();
    with_account(&state, &headers, |a, _, _| {
        a.orders
            .iter()
            .find(|o| o.client_order_id == wanted)
            .map(|o| Json(wire::order(o)))
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))
    })
}

async fn cancel_order(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    with_account(&state, &headers, |a, _, now| {
        a.cancel(&id, now).map(|()| StatusCode::NO_CONTENT)
    })
}

async fn clock(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    with_account(&state, &headers, |_, _, now| Ok(Json(wire::clock(now))))
}

async fn asset(
    State(state): Shared,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let symbol = parse_symbol(&raw)?;
    with_account(&state, &headers, |_, m, _| {
        if m.has(&symbol) {
            Ok(Json(wire::asset(&symbol)))
        } else {
            Err(ApiError::new(
                404,
                CODE_NOT_FOUND,
                format!("asset {raw:?} not found"),
            ))
        }
    })
}

fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    q.get(name)
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp())
                .map_err(|_| {
                    ApiError::new(400, CODE_INVALID, format!("{name} {s:?} is not RFC 3339"))
                })
        })
        .transpose()
}

async fn bars(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Market data needs valid keys too.
    with_account(&state, &headers, |_, _, _| Ok(()))?;
    let symbols = q
        .get("symbols")
        .ok_or_else(|| ApiError::new(400, CODE_INVALID, "symbols is required"))?
        .split(',')
        .map(|s| {
            Symbol::from_str(s.trim()).map_err(|e| ApiError::new(400, CODE_INVALID, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(tf) = q
        .get("timeframe")
        .filter(|tf| !matches!(tf.as_str(), "1Hour" | "1H"))
    {
        return Err(ApiError::new(
            400,
            CODE_INVALID,
            format!("timeframe {tf:?}: the recorded set is hourly (1Hour)"),
        ));
    }
    let limit = match q.get("limit") {
        None => 1000,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| {
                ApiError::new(400, CODE_INVALID, format!("limit {s:?} must be 1..10000"))
            })?,
    };
    let page_token = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            parse_page_token(t)
                .ok_or_else(|| ApiError::new(400, CODE_INVALID, "invalid page_token"))?,
        ),
    };
    let query = BarsQuery {
        symbols,
        start: time_param(&q, "start")?,
        end: time_param(&q, "end")?,
        limit,
        page_token,
    };
    let page = state.market.query(&query, state.clock.now().timestamp());
    Ok(Json(wire::bars_page(
        &page.bars,
        page.next_page_token.as_deref(),
    )))
}
