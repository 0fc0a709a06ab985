//! Market symbols in Alpaca's spelling (`BTC/USD`, `AAPL`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A market symbol, validated: upper-case letters and digits, with at most one
/// `/` between base and quote (`BTC/USD`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(String);

/// Why a symbol was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("symbol {0:?} is not in Alpaca's spelling (e.g. \"BTC/USD\" or \"AAPL\")")]
pub struct SymbolError(pub String);

impl Symbol {
    /// The symbol as Alpaca spells it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Symbol {
    /// The symbol a recorded-data file stands for: `BTCUSD` -> `BTC/USD` (a
    /// crypto pair quoted in USD, USDT, USDC, EUR or BTC), `AAPL` -> `AAPL`.
    ///
    /// # Errors
    /// A stem that does not spell a symbol.
    pub fn from_file_stem(stem: &str) -> Result<Self, SymbolError> {
        const QUOTES: [&str; 5] = ["USDT", "USDC", "USD", "EUR", "BTC"];
        for quote in QUOTES {
            if let Some(base) = stem.strip_suffix(quote)
                && base.len() >= 2
            {
                return format!("{base}/{quote}").parse();
            }
        }
        stem.parse()
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = !s.is_empty()
            && parts.len() <= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.')
            });
        if ok {
            Ok(Symbol(s.to_owned()))
        } else {
            Err(SymbolError(s.to_owned()))
        }
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_map_to_alpaca_symbols() {
        assert_eq!(
            Symbol::from_file_stem("BTCUSD").unwrap().as_str(),
            "BTC/USD"
        );
        assert_eq!(
            Symbol::from_file_stem("ETHUSDT").unwrap().as_str(),
            "ETH/USDT"
        );
        assert_eq!(Symbol::from_file_stem("AAPL").unwrap().as_str(), "AAPL");
        assert!(Symbol::from_file_stem("btcusd").is_err());
    }

    #[test]
    fn accepts_alpaca_spellings_and_rejects_others() {
        assert!("BTC/USD".parse::<Symbol>().is_ok());
        assert!("AAPL".parse::<Symbol>().is_ok());
        assert!("BRK.B".parse::<Symbol>().is_ok());
        for bad in ["", "btc/usd", "BTC/", "/USD", "BTC/USD/X", "BTC USD"] {
            assert!(bad.parse::<Symbol>().is_err(), "{bad}");
        }
    }
}
