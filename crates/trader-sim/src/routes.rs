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
use crate::broker::{Account, ApiError, Broker, CODE_INTERNAL, CODE_INVALID, CODE_NOT_FOUND};
use crate::{activities, orders, positions, wire};

pub(crate) struct AppState {
    pub(crate) market: Market,
    pub(crate) broker: Mutex<Broker>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) log: Arc<crate::faults::FaultInjector>,
}

pub(crate) type Shared = State<Arc<AppState>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(wire::error(self.code, &self.message))).into_response()
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/account", get(account))
        .route("/v2/account/activities", get(activities::all))
        .route("/v2/account/activities/{kind}", get(activities::of_kind))
        .route(
            "/v2/positions",
            get(positions::positions).delete(positions::close_all),
        )
        .route(
            "/v2/positions/{symbol}",
            get(positions::position).delete(positions::close_position),
        )
        // Alpaca's SDKs put a crypto pair in the path as is (`BTC/USD`).
        .route(
            "/v2/positions/{base}/{quote}",
            get(positions::pair_position).delete(positions::close_pair_position),
        )
        .route(
            "/v2/orders",
            get(orders::list_orders)
                .post(orders::create_order)
                .delete(orders::cancel_all),
        )
        .route(
            "/v2/orders:by_client_order_id",
            get(orders::order_by_client_id),
        )
        .route(
            "/v2/orders/{id}",
            get(orders::get_order)
                .patch(orders::replace_order)
                .delete(orders::cancel_order),
        )
        .route("/v2/clock", get(clock))
        .route("/v2/assets/{symbol}", get(asset))
        .route("/v2/assets/{base}/{quote}", get(pair_asset))
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
pub(crate) fn with_account<T>(
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
pub(crate) fn parse_symbol(raw: &str) -> Result<Symbol, ApiError> {
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

async fn clock(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    with_account(&state, &headers, |_, _, _| {
        Ok(Json(wire::clock(state.clock.now().timestamp_millis())))
    })
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

async fn pair_asset(
    state: Shared,
    headers: HeaderMap,
    Path((base, quote)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    asset(state, headers, Path(format!("{base}/{quote}"))).await
}

/// RFC 3339, a naive date-time taken as UTC, or a date (its midnight UTC).
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
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
