//! The position routes: `GET /v2/positions`, `GET /v2/positions/{symbol}`,
//! `DELETE /v2/positions/{symbol}` (close, with `qty` or `percentage`) and
//! `DELETE /v2/positions` (close all). A crypto pair may come as `BTCUSD`,
//! `BTC%2FUSD` or `BTC/USD` (two path segments, as Alpaca's SDKs send it).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use trader_core::Symbol;

use crate::broker::{ApiError, CODE_INVALID, CODE_NOT_FOUND};
use crate::routes::{Shared, parse_symbol, with_account};
use crate::wire;

pub(crate) async fn positions(
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

pub(crate) async fn position(
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

pub(crate) async fn pair_position(
    state: Shared,
    headers: HeaderMap,
    Path((base, quote)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    position(state, headers, Path(format!("{base}/{quote}"))).await
}

/// `DELETE /v2/positions/{symbol}`: a market sell of `qty`, `percentage`
/// of the position, or all of it; answers the order.
pub(crate) async fn close_position(
    State(state): Shared,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let symbol = parse_symbol(&raw)?;
    let number = |name: &str| {
        q.get(name)
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| {
                        ApiError::new(422, CODE_INVALID, format!("invalid {name} {s:?}"))
                    })
            })
            .transpose()
    };
    let (qty, percentage) = (number("qty")?, number("percentage")?);
    with_account(&state, &headers, |a, m, now| {
        let order = a.close_position(&symbol, qty, percentage, m, now)?;
        state.log.record_order(&order.client_order_id);
        Ok(Json(wire::order(&order)))
    })
}

pub(crate) async fn close_pair_position(
    state: Shared,
    headers: HeaderMap,
    Path((base, quote)): Path<(String, String)>,
    q: Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    close_position(state, headers, Path(format!("{base}/{quote}")), q).await
}

/// `DELETE /v2/positions`: closes every position (207, one entry each);
/// `cancel_orders=true` cancels the open orders first.
pub(crate) async fn close_all(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let cancel = q
        .get("cancel_orders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    with_account(&state, &headers, |a, m, now| {
        if cancel {
            a.cancel_open(now);
        }
        let symbols: Vec<Symbol> = a.positions.keys().cloned().collect();
        let mut out = Vec::new();
        for symbol in symbols {
            let entry = match a.close_position(&symbol, None, None, m, now) {
                Ok(order) => {
                    state.log.record_order(&order.client_order_id);
                    serde_json::json!({
                        "symbol": wire::position_symbol(&symbol),
                        "status": 200,
                        "body": wire::order(&order)
                    })
                }
                Err(e) => serde_json::json!({
                    "symbol": wire::position_symbol(&symbol),
                    "status": e.status,
                    "body": wire::error(e.code, &e.message)
                }),
            };
            out.push(entry);
        }
        Ok((
            StatusCode::MULTI_STATUS,
            Json(serde_json::Value::Array(out)),
        ))
    })
}
