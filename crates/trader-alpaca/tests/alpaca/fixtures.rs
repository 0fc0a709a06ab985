//! The recorded Alpaca examples (`tests/fixtures/alpaca/`): the client's
//! parsers read every one, and the simulator answers in the same shape.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_cmp,
    clippy::many_single_char_names
)]

use crate::common;

use std::path::PathBuf;

use crate::common::{KEY_ID, SECRET, START, Sim};
use apca::api::v2::{account, asset, clock, order, position};
use serde_json::Value;
use trader_core::{Broker, HOUR_SECS, OrderAmount, OrderRequest, Side};
use trader_sim::FaultConfig;

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "../../tests/fixtures/alpaca",
        name,
    ]
    .iter()
    .collect();
    fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

#[test]
fn client_parses_every_recorded_example() {
    let a: account::Account = serde_json::from_str(&fixture("account.json")).unwrap();
    assert_eq!(a.cash.to_f64(), Some(98_012.41));
    let o: order::Order = serde_json::from_str(&fixture("order.json")).unwrap();
    assert_eq!(o.client_order_id, "lean-2018-03-01T10:00:00Z-BTCUSD");
    assert_eq!(o.status, order::Status::Filled);
    assert!(matches!(o.amount, order::Amount::Notional { .. }));
    let p: position::Position = serde_json::from_str(&fixture("position.json")).unwrap();
    assert_eq!(p.symbol, "BTCUSD");
    let c: clock::Clock = serde_json::from_str(&fixture("clock.json")).unwrap();
    assert!(c.open);
    let s: asset::Asset = serde_json::from_str(&fixture("asset.json")).unwrap();
    assert_eq!(s.class, asset::Class::Crypto);
    let e: apca::ApiError =
        serde_json::from_str(&fixture("error_duplicate_client_order_id.json")).unwrap();
    assert_eq!(e.message, "client_order_id must be unique");

    let (bars, next) =
        trader_alpaca::data::parse_bars_page(fixture("crypto_bars.json").as_bytes()).unwrap();
    let btc = &bars[&"BTC/USD".parse().unwrap()];
    assert_eq!(btc.len(), 2);
    assert_eq!(btc[0].volume, 4.040_809_153, "fractional crypto volume");
    assert_eq!(btc[1].t - btc[0].t, HOUR_SECS);
    assert_eq!(
        next.as_deref(),
        Some("QlRDL1VTRHwxNzEwMjQxMjAwMDAwMDAwMDAw")
    );
    let (bars, next) =
        trader_alpaca::data::parse_bars_page(fixture("stock_bars.json").as_bytes()).unwrap();
    assert_eq!(bars[&"AAPL".parse().unwrap()][0].volume, 104_531.0);
    assert_eq!(next, None);
    // A broken answer is an error naming what was wrong, not an empty page.
    let e = trader_alpaca::data::parse_bars_page(
        br#"{"bars": {"BTC/USD": [{"t": "yesterday", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}]}}"#,
    )
    .unwrap_err();
    assert!(e.detail.contains("yesterday"), "{e}");
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `recorded` is in `served`, with the same JSON type where
/// neither is null; nested objects and first array elements likewise.
fn same_shape(path: &str, recorded: &Value, served: &Value, problems: &mut Vec<String>) {
    match (recorded, served) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(r), Value::Object(s)) => {
            for (k, rv) in r {
                match s.get(k) {
                    None => problems.push(format!("{path}.{k}: missing")),
                    Some(sv) => same_shape(&format!("{path}.{k}"), rv, sv, problems),
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            if let (Some(rv), Some(sv)) = (r.first(), s.first()) {
                same_shape(&format!("{path}[0]"), rv, sv, problems);
            }
        }
        (r, s) if type_of(r) != type_of(s) => {
            problems.push(format!(
                "{path}: {} recorded, {} served",
                type_of(r),
                type_of(s)
            ));
        }
        _ => {}
    }
}

#[tokio::test]
async fn simulator_answers_in_the_recorded_shapes() {
    let sim = Sim::start(FaultConfig::default(), 10_000).await;
    let client = sim.client(common::fast_settings());
    sim.set_now(START + 600);
    client
        .place(&OrderRequest {
            client_order_id: "shape-1".to_owned(),
            symbol: "BTC/USD".parse().unwrap(),
            side: Side::Buy,
            amount: OrderAmount::Notional(500.0),
        })
        .await
        .unwrap();
    sim.set_now(START + 2 * HOUR_SECS);
    let http = reqwest::Client::new();
    let base = sim.handle.base_url();
    let get = async |path: &str| -> (u16, Value) {
        let r = http
            .get(format!("{base}{path}"))
            .header("APCA-API-KEY-ID", KEY_ID)
            .header("APCA-API-SECRET-KEY", SECRET)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    let bars_path = format!(
        "/v1beta3/crypto/us/bars?symbols=BTC/USD,ETH/USD&timeframe=1Hour&limit=8&start={}",
        trader_core::format_time(START - 4 * HOUR_SECS).replace("+00:00", "Z")
    );
    let cases = [
        ("account.json", get("/v2/account").await),
        (
            "order.json",
            get("/v2/orders:by_client_order_id?client_order_id=shape-1").await,
        ),
        ("position.json", get("/v2/positions/BTCUSD").await),
        ("clock.json", get("/v2/clock").await),
        ("asset.json", get("/v2/assets/BTCUSD").await),
        ("crypto_bars.json", get(&bars_path).await),
        (
            "error_duplicate_client_order_id.json",
            get("/v2/orders/no-such-id").await,
        ),
    ];
    let mut problems = Vec::new();
    for (name, (status, served)) in &cases {
        let expected_status = if name.starts_with("error") { 404 } else { 200 };
        assert_eq!(*status, expected_status, "{name}: {served}");
        same_shape(name, &json(name), served, &mut problems);
    }
    // Exactly one data key per bars answer, and a token to the next page.
    let bars = &cases[5].1.1;
    assert_eq!(bars.as_object().unwrap().len(), 2, "{bars}");
    assert!(bars["next_page_token"].is_string(), "{bars}");
    assert!(
        problems.is_empty(),
        "shape differences:\n{}",
        problems.join("\n")
    );
}
