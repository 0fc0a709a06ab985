//! Helpers of the session tests that point `trader run`'s session at a
//! standalone simulator by the environment alone.

#![allow(dead_code, unreachable_pub, unsafe_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use trader_config::Profile;
use trader_core::{Bar, Symbol};
use trader_session::{RunRequest, RunSetup};
use trader_sim::{FaultConfig, ReplayClock, SimConfig, SimHandle, SimKeys};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 2018-09-01T00:30:00Z.
pub const START: i64 = 1_535_761_800;

/// A standalone simulator on loopback over `bars`, one account `key` /
/// `secret`, its clock at [`START`] running `speed` times real time, no
/// quota to speak of; and its clock.
pub async fn standalone_sim(
    bars: BTreeMap<Symbol, Vec<Bar>>,
    (key, secret): (&str, &str),
    speed: f64,
) -> (SimHandle, Arc<ReplayClock>) {
    let clock = Arc::new(ReplayClock::new(
        DateTime::from_timestamp(START, 0).unwrap(),
        speed,
    ));
    let sim = trader_sim::serve(
        SimConfig {
            bars,
            accounts: vec![SimKeys {
                key_id: key.to_owned(),
                secret_key: secret.to_owned(),
            }],
            starting_cash: 100_000.0,
            clock: clock.clone(),
            rate_limit_per_minute: 1_000_000,
            faults: FaultConfig::default(),
        },
        0,
    )
    .await
    .unwrap();
    (sim, clock)
}

/// Points the process's Alpaca environment at `url` with `key` / `secret`.
/// Each test binary using it runs one test: the environment is shared.
pub fn point_env_at(url: &str, (key, secret): (&str, &str)) {
    // SAFETY: called before the session starts, by the only test of its
    // binary; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("APCA_API_KEY_ID", key);
        std::env::set_var("APCA_API_SECRET_KEY", secret);
        std::env::set_var("APCA_API_BASE_URL", url);
        std::env::set_var("APCA_API_DATA_URL", url);
    }
}

/// `trader run` as the CLI would ask for it with keys set and no flags
/// (`--metrics-port` aside).
pub fn live_request(metrics_port: Option<u16>) -> RunRequest {
    RunRequest {
        data: repo().join("data/coinbase_2017_2018"),
        speed: None,
        from: None,
        until: None,
        allow_live: false,
        metrics_port,
        alert_interval: None,
        timeout: Duration::from_secs(10),
    }
}

/// The setup of a run of `profile` on the store `db`: no budget verdict,
/// alerts or host file (the gate is the CLI's), no SIGHUP trigger.
pub fn setup<'a>(profile: &'a Profile, db: &'a Path) -> RunSetup<'a> {
    RunSetup {
        profile,
        store_path: db,
        verdict_json: "{}",
        alerts: None,
        predicted_rss: 0,
        host: None,
        config_dir: Path::new(env!("CARGO_MANIFEST_DIR")),
        reload_trigger: None,
    }
}
