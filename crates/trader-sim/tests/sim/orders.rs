//! Orders beyond a plain market buy, over loopback on the shipped BTC/USD
//! bars of 2017-09-01 (hour: open, high, low): 01 4765.49 4781.96 4765.49,
//! 04 4756.66 4756.66 4715.79, 08 4742.91 4789 4742.9, 09 4789 4795.25
//! 4788.99, 11 4800 4822 4771.96. Orders are placed at 00:30.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{START, Sim, num};

const H: i64 = 3600;

fn limit(cid: &str, kind: &str, limit: f64, stop: Option<f64>, tif: &str) -> Value {
    let mut body = json!({"symbol": "BTC/USD", "qty": 0.01, "side": "buy", "type": kind,
        "limit_price": limit, "time_in_force": tif, "client_order_id": cid});
    if let Some(s) = stop {
        body["stop_price"] = json!(s);
    }
    body
}

async fn by_cid(sim: &Sim, cid: &str) -> Value {
    let (status, o) = sim
        .get(
            1,
            &format!("/v2/orders:by_client_order_id?client_order_id={cid}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cid}: {o}");
    o
}

#[tokio::test]
async fn limit_and_stop_limit_fill_by_the_bars_at_the_limit_or_better_and_ioc_cancels() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    for (cid, kind, l, s, tif) in [
        ("lim", "limit", 4740.0, None, "gtc"),
        ("stop-at-stop", "stop_limit", 4800.0, Some(4790.0), "gtc"),
        ("stop-then-limit", "stop_limit", 4785.0, Some(4790.0), "gtc"),
        ("ioc-miss", "limit", 4700.0, None, "ioc"),
        ("ioc-hit", "limit", 4800.0, None, "ioc"),
    ] {
        let (status, o) = sim.post_order(1, limit(cid, kind, l, s, tif)).await;
        assert_eq!(status, StatusCode::OK, "{cid}: {o}");
        assert_eq!(o["type"], kind);
        assert_eq!(
            o["limit_price"],
            format!("{l}"),
            "decimals answer as strings"
        );
    }
    // 04:30: the 04:00 bar's low (4715.79) is not known until it closes.
    sim.at(START + 4 * H + 1800);
    assert_eq!(by_cid(&sim, "lim").await["status"], "new");
    let hit = by_cid(&sim, "ioc-hit").await;
    assert_eq!(hit["status"], "filled", "{hit}");
    assert_eq!(
        num(&hit["filled_avg_price"]),
        4765.49,
        "at the open, better than 4800"
    );
    let miss = by_cid(&sim, "ioc-miss").await;
    assert_eq!(miss["status"], "canceled", "{miss}");
    assert_eq!(miss["canceled_at"], "2017-09-01T01:00:00Z");

    sim.at(START + 13 * H);
    let lim = by_cid(&sim, "lim").await;
    assert_eq!(lim["status"], "filled", "{lim}");
    assert_eq!(num(&lim["filled_avg_price"]), 4740.0);
    assert_eq!(lim["filled_at"], "2017-09-01T05:00:00Z");
    // The 09:00 bar reaches the stop (high 4795.25): filled at the stop.
    let s = by_cid(&sim, "stop-at-stop").await;
    assert_eq!(s["status"], "filled", "{s}");
    assert_eq!(num(&s["filled_avg_price"]), 4790.0);
    assert_eq!(s["filled_at"], "2017-09-01T10:00:00Z");
    // Triggered at 09:00 above its limit; the 11:00 bar's low reaches 4785.
    let s = by_cid(&sim, "stop-then-limit").await;
    assert_eq!(s["status"], "filled", "{s}");
    assert_eq!(num(&s["filled_avg_price"]), 4785.0);
    assert_eq!(s["filled_at"], "2017-09-01T12:00:00Z");
    sim.handle.stop().await;
}

#[tokio::test]
async fn bad_limit_orders_are_422_naming_what_is_wrong_and_limits_reserve_cash() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let mut no_limit = limit("a", "limit", 1.0, None, "gtc");
    no_limit.as_object_mut().unwrap().remove("limit_price");
    let mut notional = limit("b", "limit", 4000.0, None, "gtc");
    notional.as_object_mut().unwrap().remove("qty");
    notional["notional"] = json!(100);
    let mut bracket = limit("g", "limit", 4000.0, None, "gtc");
    bracket["order_class"] = json!("bracket");
    for (body, says) in [
        (no_limit, "limit_price is required"),
        (bracket, "order_class"),
        (
            limit("c", "stop_limit", 4000.0, None, "gtc"),
            "stop_price is required",
        ),
        (
            limit("d", "stop", 4000.0, None, "gtc"),
            "invalid order type",
        ),
        (
            limit("e", "limit", -1.0, None, "gtc"),
            "limit_price -1 must be positive",
        ),
        (limit("f", "limit", 4000.0, None, "day"), "time_in_force"),
        (notional, "notional is only for market orders"),
    ] {
        let (status, err) = sim.post_order(1, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{says}: {err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
    }
    // 20 BTC at 4700 reserve 94,000 of the 100,000.
    let mut big = limit("big", "limit", 4700.0, None, "gtc");
    big["qty"] = json!("20");
    let (status, o) = sim.post_order(1, big).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    let (status, _) = sim
        .post_order(1, json!({"symbol": "ETH/USD", "notional": 7000, "side": "buy", "type": "market", "time_in_force": "gtc"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    sim.handle.stop().await;
}

#[tokio::test]
async fn open_orders_cancel_and_limits_are_replaced() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let (_, old) = sim
        .post_order(1, limit("r1", "limit", 4000.0, None, "gtc"))
        .await;
    let id = old["id"].as_str().unwrap();
    let (status, new) = sim
        .call(
            1,
            Method::PATCH,
            &format!("/v2/orders/{id}"),
            Some(json!({"limit_price": 4100.5, "qty": "0.02", "client_order_id": "r2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{new}");
    assert_eq!(new["replaces"], id);
    assert_eq!(new["limit_price"], "4100.5");
    assert_eq!(new["qty"], "0.02");
    assert_eq!(new["client_order_id"], "r2");
    assert_eq!(new["status"], "new");
    let (_, old) = sim.get(1, &format!("/v2/orders/{id}")).await;
    assert_eq!(old["status"], "replaced");
    assert_eq!(old["replaced_by"], new["id"]);
    // A replaced order is no longer open: neither replaced nor canceled again.
    let (status, _) = sim
        .call(
            1,
            Method::PATCH,
            &format!("/v2/orders/{id}"),
            Some(json!({"limit_price": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let new_id = new["id"].as_str().unwrap();
    let (status, _) = sim
        .call(1, Method::DELETE, &format!("/v2/orders/{new_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, canceled) = sim.get(1, &format!("/v2/orders/{new_id}")).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["canceled_at"], "2017-09-01T00:30:00Z");
    let (status, _) = sim
        .call(1, Method::DELETE, &format!("/v2/orders/{new_id}"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A market order cannot be replaced.
    let (_, m) = sim
        .post_order(1, json!({"symbol": "BTC/USD", "qty": 0.01, "side": "buy", "type": "market", "time_in_force": "gtc"}))
        .await;
    let (status, err) = sim
        .call(
            1,
            Method::PATCH,
            &format!("/v2/orders/{}", m["id"].as_str().unwrap()),
            Some(json!({"qty": 0.02})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    // Cancel all: 207, one entry per open order.
    let (status, all) = sim.call(1, Method::DELETE, "/v2/orders", None).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    sim.handle.stop().await;
}

#[tokio::test]
async fn orders_list_filters_activities_list_fills_and_positions_close() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let buy = |sym: &str, cid: &str| json!({"symbol": sym, "notional": 1000, "side": "buy", "type": "market", "time_in_force": "gtc", "client_order_id": cid});
    sim.post_order(1, buy("BTC/USD", "btc")).await;
    sim.post_order(1, buy("ETH/USD", "eth")).await;
    sim.at(START + H + 1800);
    sim.post_order(1, buy("LTC/USD", "ltc")).await;
    let cids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["client_order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, want) in [
        ("", vec!["ltc"]),
        ("?status=closed", vec!["eth", "btc"]),
        ("?status=all", vec!["ltc", "eth", "btc"]),
        ("?status=all&direction=asc", vec!["btc", "eth", "ltc"]),
        ("?status=all&limit=1", vec!["ltc"]),
        ("?status=all&symbols=BTC/USD,LTCUSD", vec!["ltc", "btc"]),
        ("?status=all&after=2017-09-01T00:45:00Z", vec!["ltc"]),
        (
            "?status=all&until=2017-09-01T00:45:00%2B00:00",
            vec!["eth", "btc"],
        ),
        ("?status=all&side=sell", vec![]),
        ("?status=all&nested=True", vec!["ltc", "eth", "btc"]),
    ] {
        let (status, list) = sim.get(1, &format!("/v2/orders{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {list}");
        assert_eq!(cids(&list), want, "{query}");
    }
    for bad in ["status=gone", "limit=0", "direction=up", "after=yesterday"] {
        let (status, err) = sim.get(1, &format!("/v2/orders?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let field = bad.split('=').next().unwrap();
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }

    // Fills, newest first; paged by the last id.
    let (_, acts) = sim.get(1, "/v2/account/activities").await;
    let acts = acts.as_array().unwrap();
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(acts[0]["activity_type"], "FILL");
    assert_eq!(acts[0]["type"], "fill");
    assert_eq!(acts[0]["order_status"], "filled");
    let btc = by_cid(&sim, "btc").await;
    let (_, first) = sim
        .get(1, "/v2/account/activities/FILL?direction=asc&page_size=1")
        .await;
    assert_eq!(first[0]["order_id"], btc["id"]);
    assert_eq!(first[0]["price"], btc["filled_avg_price"]);
    assert_eq!(first[0]["qty"], btc["filled_qty"]);
    assert_eq!(first[0]["transaction_time"], "2017-09-01T01:00:00Z");
    let token = first[0]["id"].as_str().unwrap();
    let (_, second) = sim
        .get(1, &format!("/v2/account/activities?activity_types=FILL&direction=asc&page_size=1&page_token={token}"))
        .await;
    assert_eq!(second[0]["symbol"], "ETH/USD", "{second}");
    let (_, none) = sim
        .get(1, "/v2/account/activities?activity_types=DIV")
        .await;
    assert_eq!(none, json!([]));

    // Close half, then the rest (the pair as the SDKs send it: two segments).
    let held = num(&sim.get(1, "/v2/positions/BTCUSD").await.1["qty"]);
    let (status, half) = sim
        .call(
            1,
            Method::DELETE,
            "/v2/positions/BTCUSD?percentage=50",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{half}");
    assert_eq!(half["side"], "sell");
    assert!((num(&half["qty"]) - held / 2.0).abs() < 1e-12);
    sim.at(START + 2 * H + 60);
    let (status, rest) = sim
        .call(1, Method::DELETE, "/v2/positions/BTC/USD", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    sim.at(START + 3 * H + 60);
    let (status, _) = sim.get(1, "/v2/positions/BTCUSD").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sim
        .call(1, Method::DELETE, "/v2/positions/BTCUSD", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, acts) = sim.get(1, "/v2/account/activities?page_size=100").await;
    assert_eq!(
        acts.as_array().unwrap().len(),
        5,
        "three buys and two sells"
    );
    // Close all: ETH and LTC.
    let (status, all) = sim
        .call(1, Method::DELETE, "/v2/positions?cancel_orders=true", None)
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["status"], 200);
    sim.handle.stop().await;
}
