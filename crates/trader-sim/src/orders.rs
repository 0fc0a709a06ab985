//! The order routes: `POST /v2/orders` (market, limit, stop-limit; gtc,
//! ioc), `GET /v2/orders` with Alpaca's filters, `GET /v2/orders/{id}`,
//! `GET /v2/orders:by_client_order_id`, `PATCH /v2/orders/{id}` (replace),
//! `DELETE /v2/orders/{id}` and `DELETE /v2/orders` (cancel all open).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::broker::{
    ApiError, CODE_INVALID, CODE_NOT_FOUND, NewOrder, OrderType, Side, Status, TimeInForce,
};
use crate::decimal::{self, decimal, field};
use crate::routes::{Shared, parse_symbol, parse_time, with_account};
use crate::submit::Replacement;
use crate::wire;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(422, CODE_INVALID, message)
}

/// A string field of the request (422 naming it otherwise).
fn text(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    field::<String>(obj, name)
}

fn time_in_force(obj: &Map<String, Value>) -> Result<Option<TimeInForce>, ApiError> {
    text(obj, "time_in_force")?
        .map(|s| {
            TimeInForce::parse(&s)
                .ok_or_else(|| invalid(format!("invalid crypto time_in_force {s:?} (gtc or ioc)")))
        })
        .transpose()
}

pub(crate) async fn create_order(
    State(state): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = decimal::object(&body)?;
    let order_type = match text(&req, "type")?.or(text(&req, "order_type")?) {
        None => OrderType::Market,
        Some(t) => OrderType::parse(&t).ok_or_else(|| {
            invalid(format!(
                "invalid order type {t:?}: crypto orders are market, limit or stop_limit"
            ))
        })?,
    };
    if let Some(class) = text(&req, "order_class")?.filter(|c| !c.is_empty() && c != "simple") {
        return Err(invalid(format!(
            "invalid order_class {class:?}: crypto orders are simple"
        )));
    }
    let side = match text(&req, "side")?.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        other => return Err(invalid(format!("invalid side {other:?}"))),
    };
    let symbol = text(&req, "symbol")?.ok_or_else(|| invalid("symbol is required"))?;
    let new = NewOrder {
        symbol: parse_symbol(&symbol).map_err(|e| invalid(e.message))?,
        side,
        qty: decimal(&req, "qty")?,
        notional: decimal(&req, "notional")?,
        order_type,
        limit_price: decimal(&req, "limit_price")?,
        stop_price: decimal(&req, "stop_price")?,
        time_in_force: time_in_force(&req)?.unwrap_or(TimeInForce::Gtc),
        client_order_id: text(&req, "client_order_id")?,
    };
    with_account(&state, &headers, |a, m, now| {
        let order = a.submit(new, m, now)?;
        state.log.record_order(&order.client_order_id);
        Ok(Json(wire::order(&order)))
    })
}

/// `GET /v2/orders`'s query, checked.
struct ListQuery {
    status: String,
    limit: usize,
    after: Option<i64>,
    until: Option<i64>,
    ascending: bool,
    symbols: Option<Vec<trader_core::Symbol>>,
    side: Option<Side>,
}

fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let status = q.get("status").map_or("open", String::as_str).to_owned();
    if !matches!(status.as_str(), "open" | "closed" | "all") {
        return Err(invalid(format!(
            "invalid status {status:?} (open, closed or all)"
        )));
    }
    let limit = match q.get("limit") {
        None => 50,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| invalid(format!("invalid limit {s:?} (1 to 500)")))?,
    };
    let time = |name: &str| {
        q.get(name)
            .map(|s| parse_time(s).ok_or_else(|| invalid(format!("invalid {name} {s:?}"))))
            .transpose()
    };
    let ascending = match q.get("direction").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(d) => return Err(invalid(format!("invalid direction {d:?} (asc or desc)"))),
    };
    if let Some(n) = q.get("nested")
        && !n.eq_ignore_ascii_case("true")
        && !n.eq_ignore_ascii_case("false")
    {
        return Err(invalid(format!("invalid nested {n:?} (true or false)")));
    }
    let symbols = q
        .get("symbols")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split(',')
                .map(|x| parse_symbol(x.trim()).map_err(|e| invalid(e.message)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let side = match q.get("side").map(String::as_str) {
        None => None,
        Some("buy") => Some(Side::Buy),
        Some("sell") => Some(Side::Sell),
        Some(s) => return Err(invalid(format!("invalid side {s:?}"))),
    };
    Ok(ListQuery {
        status,
        limit,
        after: time("after")?,
        until: time("until")?,
        ascending,
        symbols,
        side,
    })
}

pub(crate) async fn list_orders(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let q = list_query(&q)?;
    with_account(&state, &headers, |a, _, _| {
        let mut list: Vec<&crate::broker::Order> = a
            .orders
            .iter()
            .filter(|o| match q.status.as_str() {
                "open" => o.status == Status::New,
                "closed" => o.status != Status::New,
                _ => true,
            })
            .filter(|o| q.after.is_none_or(|t| o.created_at > t))
            .filter(|o| q.until.is_none_or(|t| o.created_at < t))
            .filter(|o| q.symbols.as_ref().is_none_or(|s| s.contains(&o.symbol)))
            .filter(|o| q.side.is_none_or(|s| o.side == s))
            .collect();
        // Orders are kept in submission order.
        if !q.ascending {
            list.reverse();
        }
        list.truncate(q.limit);
        Ok(Json(Value::Array(
            list.into_iter().map(wire::order).collect(),
        )))
    })
}

pub(crate) async fn get_order(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_account(&state, &headers, |a, _, _| {
        a.orders
            .iter()
            .find(|o| o.id == id)
            .map(|o| Json(wire::order(o)))
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))
    })
}

pub(crate) async fn order_by_client_id(
    State(state): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let wanted = q.get("client_order_id").cloned().unwrap_or_default();
    with_account(&state, &headers, |a, _, _| {
        a.orders
            .iter()
            .find(|o| o.client_order_id == wanted)
            .map(|o| Json(wire::order(o)))
            .ok_or_else(|| ApiError::new(404, CODE_NOT_FOUND, "order not found"))
    })
}

pub(crate) async fn replace_order(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = decimal::object(&body)?;
    let change = Replacement {
        qty: decimal(&req, "qty")?,
        limit_price: decimal(&req, "limit_price")?,
        stop_price: decimal(&req, "stop_price")?,
        time_in_force: time_in_force(&req)?,
        client_order_id: text(&req, "client_order_id")?,
    };
    with_account(&state, &headers, |a, m, now| {
        let order = a.replace(&id, change, m, now)?;
        state.log.record_order(&order.client_order_id);
        Ok(Json(wire::order(&order)))
    })
}

pub(crate) async fn cancel_order(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    with_account(&state, &headers, |a, _, now| {
        a.cancel(&id, now).map(|()| StatusCode::NO_CONTENT)
    })
}

/// Cancels every open order; Alpaca answers 207 with one entry per order.
pub(crate) async fn cancel_all(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    with_account(&state, &headers, |a, _, now| {
        let out = a
            .cancel_open(now)
            .into_iter()
            .map(|id| json!({ "id": id, "status": 200, "body": null }))
            .collect();
        Ok((StatusCode::MULTI_STATUS, Json(Value::Array(out))))
    })
}
