//! Loads and validates `trader`'s configuration: profiles (`configs/<name>.toml`),
//! the host file (`configs/host.toml`: machine envelope, co-tenants, alert
//! thresholds), and the Alpaca keys and endpoints from the environment.
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

pub use endpoints::{AlpacaEndpoints, DATA_URL, LIVE_TRADING_URL, PAPER_TRADING_URL};
pub use error::ConfigError;
pub use host::{AlertSettings, HostConfig, LimitSettings, MemorySpec, TenantConfig};
pub use profile::{
    EnsembleSettings, MetricsSettings, Profile, ProfileFile, StoreSettings, TradingSettings,
    resolve_profile_path,
};
pub use secrets::{AlpacaKeys, Secret};

use std::path::Path;

/// Reads a TOML file into `T`, naming the file in every error.
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })
}
