//! Where the Alpaca client connects: `APCA_API_BASE_URL` (trading, default
//! the paper host) and `APCA_API_DATA_URL` (market data, default Alpaca's
//! data host), so the same binary talks to Alpaca or to the simulator.

use crate::ConfigError;

/// Alpaca's paper-trading API.
pub const PAPER_TRADING_URL: &str = "https://paper-api.alpaca.markets";
/// Alpaca's live-trading API (real money).
pub const LIVE_TRADING_URL: &str = "https://api.alpaca.markets";
/// Alpaca's market-data API.
pub const DATA_URL: &str = "https://data.alpaca.markets";

/// Base URLs of the trading and data APIs, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlpacaEndpoints {
    pub trading_url: String,
    pub data_url: String,
}

impl Default for AlpacaEndpoints {
    fn default() -> Self {
        AlpacaEndpoints {
            trading_url: PAPER_TRADING_URL.to_owned(),
            data_url: DATA_URL.to_owned(),
        }
    }
}

impl AlpacaEndpoints {
    /// Both base URLs from the environment, defaulting to Alpaca paper.
    #[allow(clippy::disallowed_methods)] // this crate is the one reader of the environment
    pub fn from_env() -> Result<Self, ConfigError> {
        let read = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => checked_url(name, &v),
                Ok(_) | Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Env {
                    name,
                    value: String::new(),
                    reason: "not valid UTF-8".to_owned(),
                }),
            }
        };
        Ok(AlpacaEndpoints {
            trading_url: read("APCA_API_BASE_URL", PAPER_TRADING_URL)?,
            data_url: read("APCA_API_DATA_URL", DATA_URL)?,
        })
    }

    /// Whether the trading URL is Alpaca's live (real-money) host.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.trading_url
            .trim_end_matches('/')
            .eq_ignore_ascii_case(LIVE_TRADING_URL)
    }
}

/// An `http(s)://host[:port][/path]` URL, trailing slash removed.
fn checked_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !host.contains(' ') => {
            Ok(v.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::Env {
            name,
            value: value.to_owned(),
            reason: "must be an http:// or https:// URL with a host".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_trimmed() {
        assert_eq!(
            checked_url("APCA_API_BASE_URL", "http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "paper-api.alpaca.markets",
            "ftp://x",
            "http://",
            "https:///v2",
        ] {
            let e = checked_url("APCA_API_DATA_URL", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("APCA_API_DATA_URL") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn live_host_is_recognised() {
        let live = AlpacaEndpoints {
            trading_url: "https://API.alpaca.markets/".to_owned(),
            data_url: DATA_URL.to_owned(),
        };
        assert!(live.is_live());
        assert!(!AlpacaEndpoints::default().is_live());
    }
}
