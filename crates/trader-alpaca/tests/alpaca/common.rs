//! A simulator over the shipped recorded data, and a client for it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Secret};
use trader_core::{Bar, HOUR_SECS, ManualClock, Symbol};
use trader_sim::{FaultConfig, SimConfig, SimHandle, SimKeys, serve};

/// 2017-09-01T00:00:00Z, inside the recorded set.
pub(crate) const START: i64 = 1_504_224_000;

pub(crate) const KEY_ID: &str = "PKTESTKEYID0000000042";
pub(crate) const SECRET: &str = "sEcReT-never-to-be-logged-7f3a";

/// The three recorded symbols, bars from 2017-08-01 to 2017-10-01.
pub(crate) fn recorded() -> BTreeMap<Symbol, Vec<Bar>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/coinbase_2017_2018");
    [
        ("BTCUSD.csv", "BTC/USD"),
        ("ETHUSD.csv", "ETH/USD"),
        ("LTCUSD.csv", "LTC/USD"),
    ]
    .into_iter()
    .map(|(file, symbol)| {
        let bars = fs_err::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| Bar::from_recorded_line(l).unwrap())
            .filter(|b| (START - 31 * 24 * HOUR_SECS..START + 30 * 24 * HOUR_SECS).contains(&b.t))
            .collect();
        (symbol.parse().unwrap(), bars)
    })
    .collect()
}

pub(crate) fn symbols() -> Vec<Symbol> {
    recorded().into_keys().collect()
}

pub(crate) struct Sim {
    pub(crate) handle: SimHandle,
    pub(crate) clock: Arc<ManualClock>,
}

impl Sim {
    pub(crate) async fn start(faults: FaultConfig, rate_limit_per_minute: u32) -> Self {
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp(START, 0).unwrap(),
        ));
        let handle = serve(
            SimConfig {
                bars: recorded(),
                accounts: vec![SimKeys {
                    key_id: KEY_ID.to_owned(),
                    secret_key: SECRET.to_owned(),
                }],
                starting_cash: 100_000.0,
                clock: clock.clone(),
                rate_limit_per_minute,
                faults,
            },
            0,
        )
        .await
        .unwrap();
        Sim { handle, clock }
    }

    pub(crate) fn set_now(&self, t: i64) {
        self.clock.set(DateTime::from_timestamp(t, 0).unwrap());
    }

    pub(crate) fn client(&self, settings: ClientSettings) -> AlpacaClient {
        self.client_with_keys(settings, KEY_ID, SECRET)
    }

    pub(crate) fn client_with_keys(
        &self,
        settings: ClientSettings,
        id: &str,
        secret: &str,
    ) -> AlpacaClient {
        let url = self.handle.base_url();
        AlpacaClient::new(
            &AlpacaEndpoints {
                trading_url: url.clone(),
                data_url: url,
            },
            &AlpacaKeys {
                key_id: Secret::new(id.to_owned()),
                secret_key: Secret::new(secret.to_owned()),
            },
            settings,
        )
        .unwrap()
    }
}

/// Settings for tests on loopback: short timeout and backoff, no quota
/// worth waiting for.
pub(crate) fn fast_settings() -> ClientSettings {
    ClientSettings {
        requests_per_minute: NonZeroU32::new(100_000).unwrap(),
        burst: NonZeroU32::new(1_000).unwrap(),
        timeout: Duration::from_millis(400),
        max_retries: 12,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(100),
        bars_page_limit: 10_000,
    }
}
