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

/// The process's Alpaca environment, shared by every test of this binary:
/// those that point it at a simulator hold it alone ([`env_alone`]), the
/// others share it unset ([`env_shared`]), so that no test reads it while
/// another sets it.
static ENV: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const ENV_VARS: [&str; 4] = [
    "APCA_API_KEY_ID",
    "APCA_API_SECRET_KEY",
    "APCA_API_BASE_URL",
    "APCA_API_DATA_URL",
];

/// The environment held alone: [`point_env_at`] may set it; unset again
/// when dropped.
pub struct EnvAlone(tokio::sync::RwLockWriteGuard<'static, ()>);

impl Drop for EnvAlone {
    fn drop(&mut self) {
        for var in ENV_VARS {
            // SAFETY: this test holds the environment alone (see `ENV`).
            unsafe { std::env::remove_var(var) };
        }
    }
}

/// Waits until no other test of this binary uses the environment.
pub async fn env_alone() -> EnvAlone {
    EnvAlone(ENV.write().await)
}

/// [`env_alone`] outside a runtime.
pub fn env_alone_blocking() -> EnvAlone {
    EnvAlone(ENV.blocking_write())
}

/// The environment shared, as the tests that do not set it find it.
pub async fn env_shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    ENV.read().await
}

/// Points the process's Alpaca environment at `url` with `key` / `secret`,
/// for the test holding `_alone`.
pub fn point_env_at(_alone: &EnvAlone, url: &str, (key, secret): (&str, &str)) {
    // SAFETY: called before the session starts, by the test holding the
    // environment alone; no other test reads it meanwhile.
    unsafe {
        std::env::set_var(ENV_VARS[0], key);
        std::env::set_var(ENV_VARS[1], secret);
        std::env::set_var(ENV_VARS[2], url);
        std::env::set_var(ENV_VARS[3], url);
    }
}

/// `trader run` as the CLI would ask for it with keys set and no flags
/// (`--metrics-port` and `--requests-per-minute` aside).
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
        // The simulator's quota is 1,000,000 a minute: the client's need
        // not pace the session at the simulator's speed.
        requests_per_minute: std::num::NonZeroU32::new(100_000),
    }
}

/// The setup of a run of `profile` on the store `db`: no budget verdict,
/// alerts or host file (the gate is the CLI's), no SIGHUP trigger.
pub fn setup<'a>(profile: &'a Profile, db: &'a trader_core::StoreLocation) -> RunSetup<'a> {
    RunSetup {
        profile,
        store: db,
        verdict_json: "{}",
        alerts: None,
        predicted_rss: 0,
        host: None,
        config_dir: Path::new(env!("CARGO_MANIFEST_DIR")),
        reload_trigger: None,
    }
}
