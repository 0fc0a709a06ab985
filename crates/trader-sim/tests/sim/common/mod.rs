//! The simulator over loopback with reqwest and a manual clock, on the
//! shipped recorded data: the harness of the simulator's tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::Value;
use trader_core::{Bar, ManualClock, Symbol};
use trader_sim::{SimConfig, SimHandle, SimKeys, serve};

/// 2017-09-01T00:00:00Z, inside the recorded set.
pub(crate) const START: i64 = 1_504_224_000;

pub(crate) fn load(file: &str, symbol: &str) -> (Symbol, Vec<Bar>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/coinbase_2017_2018")
        .join(file);
    let bars = fs_err::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| Bar::from_recorded_line(l).unwrap())
        .collect();
    (symbol.parse().unwrap(), bars)
}

pub(crate) fn keys(n: u32) -> SimKeys {
    SimKeys {
        key_id: format!("PKSIM{n}"),
        secret_key: format!("secret{n}"),
    }
}

pub(crate) struct Sim {
    pub(crate) handle: SimHandle,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) http: reqwest::Client,
}

impl Sim {
    pub(crate) async fn start() -> Self {
        Self::start_limited(10_000).await
    }

    pub(crate) async fn start_limited(rate_limit_per_minute: u32) -> Self {
        let bars: BTreeMap<Symbol, Vec<Bar>> = [
            load("BTCUSD.csv", "BTC/USD"),
            load("ETHUSD.csv", "ETH/USD"),
            load("LTCUSD.csv", "LTC/USD"),
        ]
        .into_iter()
        .collect();
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp(START, 0).unwrap(),
        ));
        let handle = serve(
            SimConfig {
                bars,
                accounts: vec![keys(1), keys(2)],
                starting_cash: 100_000.0,
                clock: clock.clone(),
                rate_limit_per_minute,
                faults: trader_sim::FaultConfig::default(),
            },
            0,
        )
        .await
        .unwrap();
        Sim {
            handle,
            clock,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn at(&self, t: i64) {
        self.clock.set(DateTime::from_timestamp(t, 0).unwrap());
    }

    pub(crate) async fn get(&self, who: u32, path: &str) -> (StatusCode, Value) {
        let k = keys(who);
        let r = self
            .http
            .get(format!("{}{path}", self.handle.base_url()))
            .header("APCA-API-KEY-ID", k.key_id)
            .header("APCA-API-SECRET-KEY", k.secret_key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post_order(&self, who: u32, body: Value) -> (StatusCode, Value) {
        let k = keys(who);
        let r = self
            .http
            .post(format!("{}/v2/orders", self.handle.base_url()))
            .header("APCA-API-KEY-ID", k.key_id)
            .header("APCA-API-SECRET-KEY", k.secret_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }
}

pub(crate) fn num(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

impl Sim {
    /// Any method, optional JSON body; the answer's status and JSON (null
    /// when the body is empty or not JSON).
    pub(crate) async fn call(
        &self,
        who: u32,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let k = keys(who);
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.handle.base_url()))
            .header("APCA-API-KEY-ID", k.key_id)
            .header("APCA-API-SECRET-KEY", k.secret_key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}
