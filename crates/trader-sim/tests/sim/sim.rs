//! The simulator over loopback with reqwest and a manual clock, on the
//! shipped recorded data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use std::collections::BTreeMap;

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::json;
use trader_sim::FEE_BPS;

use crate::common::{START, Sim, keys, load, num};

#[tokio::test]
async fn unknown_keys_get_401() {
    let sim = Sim::start().await;
    let r = sim
        .http
        .get(format!("{}/v2/account", sim.handle.base_url()))
        .header("APCA-API-KEY-ID", "PKSIM1")
        .header("APCA-API-SECRET-KEY", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    sim.handle.stop().await;
}

#[tokio::test]
async fn bars_of_three_symbols_page_through_and_stop_at_the_clock() {
    let sim = Sim::start().await;
    // 100 h after the start; bars from 20 h before it: 119 closed hours x 3.
    sim.at(START + 100 * 3600 + 1800);
    let mut token = String::new();
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut pages = 0;
    loop {
        let path = format!(
            "/v1beta3/crypto/us/bars?symbols=BTC/USD,ETH/USD,LTC/USD&timeframe=1Hour&start=2017-08-31T04:00:00Z&limit=50&page_token={token}"
        );
        let (status, body) = sim.get(1, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        let page_len: usize = body["bars"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum();
        assert!(page_len <= 50);
        for (sym, list) in body["bars"].as_object().unwrap() {
            for b in list.as_array().unwrap() {
                assert!(
                    b["o"].is_f64()
                        && b["v"].is_number()
                        && b["t"].as_str().unwrap().ends_with('Z')
                );
                got.entry(sym.clone()).or_default().push(
                    DateTime::parse_from_rfc3339(b["t"].as_str().unwrap())
                        .unwrap()
                        .timestamp(),
                );
            }
        }
        match body["next_page_token"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert!(pages >= 7, "{pages} pages");
    assert_eq!(got.len(), 3);
    for (sym, ts) in &got {
        // 2017-08-31T04Z .. the last closed hour (START + 99h), no gaps, no duplicates.
        assert_eq!(ts.len(), 20 + 100, "{sym}");
        assert!(ts.windows(2).all(|w| w[1] - w[0] == 3600), "{sym}");
        assert_eq!(
            *ts.last().unwrap(),
            START + 99 * 3600,
            "{sym}: only closed bars"
        );
    }
    sim.handle.stop().await;
}

#[tokio::test]
async fn an_order_fills_at_the_next_open_with_the_fee_and_shows_in_positions() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let (status, order) = sim
        .post_order(1, json!({"symbol": "BTC/USD", "notional": "1000", "side": "buy", "type": "market", "time_in_force": "gtc", "client_order_id": "lean-1504224000-BTCUSD"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["status"], "new");
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "UUID-shaped id");

    // The next bar opens at START + 1h.
    sim.at(START + 3600 + 60);
    let (_, filled) = sim.get(1, &format!("/v2/orders/{id}")).await;
    assert_eq!(filled["status"], "filled", "{filled}");
    let (_, btc) = load("BTCUSD.csv", "BTC/USD");
    let open = btc.iter().find(|b| b.t == START + 3600).unwrap().open;
    assert!((num(&filled["filled_avg_price"]) - open).abs() < 1e-9);
    let (_, positions) = sim.get(1, "/v2/positions").await;
    assert_eq!(positions[0]["symbol"], "BTCUSD");
    let qty = num(&positions[0]["qty"]);
    assert!(
        (qty - 1000.0 / open * (1.0 - FEE_BPS / 10_000.0)).abs() < 1e-12,
        "{qty}"
    );
    let (_, account) = sim.get(1, "/v2/account").await;
    assert!((num(&account["cash"]) - 99_000.0).abs() < 1e-9);
    let (status, _) = sim.get(1, "/v2/positions/BTCUSD").await;
    assert_eq!(status, StatusCode::OK);
    // The other key pair has its own, untouched account.
    let (_, other) = sim.get(2, "/v2/account").await;
    assert_eq!(num(&other["cash"]), 100_000.0);
    sim.handle.stop().await;
}

#[tokio::test]
async fn duplicate_client_order_id_is_422_and_the_first_order_can_be_looked_up() {
    let sim = Sim::start().await;
    let body = json!({"symbol": "ETH/USD", "notional": "500", "side": "buy", "type": "market", "time_in_force": "gtc", "client_order_id": "dup-1"});
    let (status, first) = sim.post_order(1, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = sim.post_order(1, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["message"], "client_order_id must be unique");
    let (status, found) = sim
        .get(1, "/v2/orders:by_client_order_id?client_order_id=dup-1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["id"], first["id"]);
    sim.handle.stop().await;
}

#[tokio::test]
async fn buying_power_and_quantity_are_enforced_and_open_orders_cancel() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let (status, err) = sim
        .post_order(1, json!({"symbol": "BTC/USD", "notional": "100001", "side": "buy", "time_in_force": "gtc"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient balance for USD")
    );
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "qty": "1", "side": "sell", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "DOGE/USD", "qty": "1", "side": "buy", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "BTC/USD", "qty": "1", "side": "buy", "time_in_force": "day"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, order) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "notional": "100", "side": "buy", "time_in_force": "gtc"}),
        )
        .await;
    let id = order["id"].as_str().unwrap();
    let url = format!("{}/v2/orders/{id}", sim.handle.base_url());
    let k = keys(1);
    let cancel = || {
        sim.http
            .delete(&url)
            .header("APCA-API-KEY-ID", &k.key_id)
            .header("APCA-API-SECRET-KEY", &k.secret_key)
            .send()
    };
    assert_eq!(cancel().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        cancel().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    sim.at(START + 5 * 3600);
    let (_, o) = sim.get(1, &format!("/v2/orders/{id}")).await;
    assert_eq!(o["status"], "canceled");
    let (_, clock) = sim.get(1, "/v2/clock").await;
    assert_eq!(clock["timestamp"], "2017-09-01T05:00:00Z");
    let (status, asset) = sim.get(1, "/v2/assets/BTCUSD").await;
    assert_eq!(
        (status, asset["symbol"].as_str()),
        (StatusCode::OK, Some("BTC/USD"))
    );
    sim.handle.stop().await;
}

#[tokio::test]
async fn open_sells_reserve_the_quantity_they_will_sell() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "notional": "1000", "side": "buy", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sim.at(START + 3600 + 60);
    let (_, positions) = sim.get(1, "/v2/positions").await;
    let held = num(&positions[0]["qty"]);
    let half = format!("{}", held / 2.0);
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "qty": half, "side": "sell", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The second half is still there; a third sell of half is not.
    let (status, _) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "qty": half, "side": "sell", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = sim
        .post_order(
            1,
            json!({"symbol": "LTC/USD", "qty": half, "side": "sell", "time_in_force": "gtc"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    sim.handle.stop().await;
}

#[tokio::test]
async fn rate_limit_headers_count_down_and_429_past_the_quota() {
    let sim = Sim::start_limited(3).await;
    let k = keys(1);
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let r = sim
            .http
            .get(format!("{}/v2/clock", sim.handle.base_url()))
            .header("APCA-API-KEY-ID", &k.key_id)
            .header("APCA-API-SECRET-KEY", &k.secret_key)
            .send()
            .await
            .unwrap();
        let h = |n: &str| r.headers()[n].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(h("X-RateLimit-Limit"), 3);
        assert!(h("X-RateLimit-Reset") > 1_700_000_000, "epoch seconds");
        remaining.push((r.status(), h("X-RateLimit-Remaining")));
    }
    assert_eq!(
        remaining,
        [
            (StatusCode::OK, 2),
            (StatusCode::OK, 1),
            (StatusCode::OK, 0),
            (StatusCode::TOO_MANY_REQUESTS, 0)
        ]
    );
    // Another key has its own quota.
    let (status, _) = sim.get(2, "/v2/clock").await;
    assert_eq!(status, StatusCode::OK);
    sim.handle.stop().await;
}

#[tokio::test]
async fn numbers_and_strings_are_both_accepted_and_a_bad_one_is_422_naming_the_field() {
    let sim = Sim::start().await;
    sim.at(START + 1800);
    // As Alpaca's SDKs send them: JSON numbers.
    let (status, by_notional) = sim
        .post_order(1, json!({"symbol": "BTC/USD", "notional": 1000.0, "side": "buy", "type": "market", "time_in_force": "gtc"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{by_notional}");
    assert_eq!(
        by_notional["notional"], "1000",
        "decimals answer as strings"
    );
    let (status, by_qty) = sim
        .post_order(1, json!({"symbol": "ETHUSD", "qty": 0.01, "side": "buy", "type": "market", "time_in_force": "gtc"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{by_qty}");
    assert_eq!(by_qty["qty"], "0.01");
    // As the API documents them: strings.
    let (status, s) = sim
        .post_order(1, json!({"symbol": "LTC/USD", "qty": "0.5", "side": "buy", "type": "market", "time_in_force": "gtc"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["qty"], "0.5");
    for (field, bad) in [
        ("qty", json!("abc")),
        ("notional", json!(true)),
        ("qty", json!("NaN")),
    ] {
        let mut body =
            json!({"symbol": "BTC/USD", "side": "buy", "type": "market", "time_in_force": "gtc"});
        body[field] = bad.clone();
        let (status, err) = sim.post_order(1, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field} {bad}");
        let msg = err["message"].as_str().unwrap();
        assert!(msg.contains(field), "{msg}");
    }
    sim.handle.stop().await;
}
