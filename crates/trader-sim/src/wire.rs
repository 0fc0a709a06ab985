//! The simulator's own JSON, shaped as Alpaca's (decimals as strings where
//! Alpaca writes strings). Never shared with the client.

use serde::Serialize;
use serde_json::{Value, json};
use trader_core::{Bar, Symbol, format_time};

use crate::broker::{Account, Fill, Order, Position, Side};

/// Alpaca writes crypto positions without the slash (`BTCUSD`).
pub(crate) fn position_symbol(symbol: &Symbol) -> String {
    symbol.as_str().replace('/', "")
}

fn rfc3339(t: i64) -> String {
    format_time(t).replace("+00:00", "Z")
}

fn decimal(v: f64) -> String {
    format!("{v}")
}

pub(crate) fn account(a: &Account, equity: f64) -> Value {
    json!({
        "id": a.id,
        "account_number": format!("PA{}", &a.id[a.id.len() - 8..]),
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "cash": decimal(a.cash),
        "buying_power": decimal(a.cash),
        "non_marginable_buying_power": decimal(a.cash),
        "equity": decimal(equity),
        "last_equity": decimal(equity),
        "portfolio_value": decimal(equity),
        "long_market_value": decimal(equity - a.cash),
        "short_market_value": "0",
        "initial_margin": "0",
        "maintenance_margin": "0",
        "multiplier": "1",
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "pattern_day_trader": false,
        "trade_suspended_by_user": false,
        "trading_blocked": false,
        "transfers_blocked": false,
        "account_blocked": false,
        "shorting_enabled": false,
        "sma": "0",
        "daytrade_count": 0,
        "last_maintenance_margin": "0",
        "daytrading_buying_power": "0",
        "regt_buying_power": decimal(a.cash),
        "options_buying_power": "0",
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
        "crypto_tier": 1,
        "balance_asof": "2024-01-01",
        "created_at": "2024-01-01T00:00:00Z"
    })
}

/// A UUID-shaped asset id, stable per symbol.
fn asset_id(symbol: &Symbol) -> String {
    let h = symbol
        .as_str()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("00000000-0000-4003-8000-{:012x}", h & 0xffff_ffff_ffff)
}

pub(crate) fn position(symbol: &Symbol, p: &Position, price: f64) -> Value {
    let value = p.qty * price;
    json!({
        "asset_id": asset_id(symbol),
        "symbol": position_symbol(symbol),
        "exchange": "CRYPTO",
        "asset_class": "crypto",
        "qty": decimal(p.qty),
        "qty_available": decimal(p.qty),
        "avg_entry_price": decimal(if p.qty > 0.0 { p.cost / p.qty } else { 0.0 }),
        "side": "long",
        "market_value": decimal(value),
        "cost_basis": decimal(p.cost),
        "unrealized_pl": decimal(value - p.cost),
        "unrealized_plpc": decimal(if p.cost > 0.0 { (value - p.cost) / p.cost } else { 0.0 }),
        "unrealized_intraday_pl": decimal(value - p.cost),
        "unrealized_intraday_plpc": decimal(if p.cost > 0.0 { (value - p.cost) / p.cost } else { 0.0 }),
        "current_price": decimal(price),
        "lastday_price": decimal(price),
        "change_today": "0",
        "asset_marginable": false
    })
}

pub(crate) fn order(o: &Order) -> Value {
    let intent = match o.side {
        Side::Buy => "buy_to_open",
        Side::Sell => "sell_to_close",
    };
    json!({
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": rfc3339(o.created_at),
        "updated_at": rfc3339(o.updated_at),
        "submitted_at": rfc3339(o.created_at),
        "filled_at": o.filled_at.map(rfc3339),
        "expired_at": null,
        "expires_at": null,
        "canceled_at": o.canceled_at.map(rfc3339),
        "failed_at": null,
        "replaced_at": o.replaced_at.map(rfc3339),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": asset_id(&o.symbol),
        "symbol": o.symbol.as_str(),
        "asset_class": "crypto",
        "notional": o.notional.map(decimal),
        "qty": o.qty.map(decimal),
        "filled_qty": decimal(o.filled_qty),
        "filled_avg_price": o.filled_avg_price.map(decimal),
        "order_class": "",
        "order_type": o.order_type.as_str(),
        "type": o.order_type.as_str(),
        "side": o.side.as_str(),
        "position_intent": intent,
        "time_in_force": o.time_in_force.as_str(),
        "limit_price": o.limit_price.map(decimal),
        "stop_price": o.stop_price.map(decimal),
        "status": o.status.as_str(),
        "extended_hours": false,
        "legs": null,
        "trail_percent": null,
        "trail_price": null,
        "hwm": null,
        "source": null,
        "subtag": null
    })
}

/// One fill as `GET /v2/account/activities` writes it.
pub(crate) fn fill_activity(account_id: &str, f: &Fill) -> Value {
    json!({
        "id": f.id,
        "account_id": account_id,
        "activity_type": "FILL",
        "transaction_time": rfc3339(f.t),
        "type": "fill",
        "price": decimal(f.price),
        "qty": decimal(f.qty),
        "side": f.side.as_str(),
        "symbol": f.symbol.as_str(),
        "leaves_qty": "0",
        "order_id": f.order_id,
        "cum_qty": decimal(f.qty),
        "order_status": "filled"
    })
}

pub(crate) fn error(code: u32, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

/// `GET /v2/clock` at `now_ms` (epoch milliseconds): the timestamp with
/// its milliseconds when it has any (Alpaca writes nanoseconds), so that a
/// trader can derive a fast simulator's speed from readings a few hundred
/// ms apart.
pub(crate) fn clock(now_ms: i64) -> Value {
    let now = now_ms.div_euclid(1000);
    let timestamp = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    // Crypto trades around the clock.
    json!({
        "timestamp": timestamp,
        "is_open": true,
        "next_open": rfc3339(now),
        "next_close": rfc3339(now + 7 * 24 * 3600)
    })
}

pub(crate) fn asset(symbol: &Symbol) -> Value {
    json!({
        "id": asset_id(symbol),
        "class": "crypto",
        "exchange": "CRYPTO",
        "symbol": symbol.as_str(),
        "name": symbol.as_str(),
        "status": "active",
        "tradable": true,
        "marginable": false,
        "maintenance_margin_requirement": 100,
        "shortable": false,
        "easy_to_borrow": false,
        "fractionable": true,
        "attributes": [],
        "min_order_size": "0.000000001",
        "min_trade_increment": "0.000000001",
        "price_increment": "0.01"
    })
}

/// One bar as Alpaca's market-data API writes it (numbers, not strings).
#[derive(Serialize)]
struct WireBar {
    t: String,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    n: u64,
    vw: f64,
}

pub(crate) fn bars_page(
    bars: &std::collections::BTreeMap<Symbol, Vec<Bar>>,
    next: Option<&str>,
) -> Value {
    let map: serde_json::Map<String, Value> = bars
        .iter()
        .map(|(s, bs)| {
            let list: Vec<WireBar> = bs
                .iter()
                .map(|b| WireBar {
                    t: rfc3339(b.t),
                    o: b.open,
                    h: b.high,
                    l: b.low,
                    c: b.close,
                    v: b.volume,
                    n: 0,
                    vw: (b.high + b.low + b.close) / 3.0,
                })
                .collect();
            (s.as_str().to_owned(), json!(list))
        })
        .collect();
    json!({ "bars": map, "next_page_token": next })
}
