//! Loads and validates `trader`'s configuration: profiles (`configs/<name>.toml`),
//! the host file (`configs/host.toml`: machine envelope, co-tenants, alert
//! thresholds), the Alpaca keys and endpoints from the environment, and which
//! store a command uses (`--store`, `TRADER_STORE_URL`, the profile's `[store]`).
//!
//! Every struct denies unknown keys; every error names the file, the key and
//! the bad value. Relative paths inside a profile are resolved against the
//! directory of the profile file, so a profile works from any working directory.
//!
//! What it does not do: probe the machine (trader-budget) or read model files
//! (trader-ensemble). This is the only crate that reads environment variables.
//!
//! Tests: `cargo test -p trader-config` (one test parses every file in `configs/`).

mod endpoints;
mod error;
mod host;
mod profile;
mod secrets;
mod store;

pub use endpoints::{AlpacaEndpoints, DATA_URL, LIVE_TRADING_URL, PAPER_TRADING_URL};
pub use error::ConfigError;
pub use host::{
    AlertSettings, CHECK_INTERVAL_SECS, HostConfig, LimitSettings, MemorySpec, TENANT_COUNT,
    TenantConfig, hard_ram_percent,
};
pub use profile::{
    BAR_DELAY_SECS, EnsembleSettings, HISTORY_HOURS, MIN_HOURS_BETWEEN_SWAPS, MetricsSettings,
    POLL_INTERVAL_SECS, PollScheduleKind, Profile, ProfileFile, ReloadMode, ReloadSettings,
    STALE_AFTER_HOURS, StoreSettings, THREADS, TOP_N, TradingSettings, resolve_profile_path,
};
pub use secrets::{AlpacaKeys, Secret};
pub use store::{
    STORE_URL_ENV, TEST_PG_URL_ENV, parse_store_arg, resolve_store, store_url_from_env, test_pg_url,
};

use std::ops::RangeInclusive;
use std::path::Path;

/// Reads a TOML file into `T`, naming the file in every error.
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    if path.is_dir() {
        return Err(ConfigError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let text = fs_err::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Checks that `key` = `value` of the file at `path` lies in `range`; the
/// error names the file, the key, the value and the allowed range.
fn check_range(
    path: &Path,
    key: &str,
    value: u32,
    range: &RangeInclusive<u32>,
    unit: &str,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_owned(),
        value: value.to_string(),
        reason: format!(
            "outside the allowed range {}..={} ({unit})",
            range.start(),
            range.end()
        ),
    })
}
