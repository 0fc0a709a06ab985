//! Symbol spelling, in one place. Alpaca writes crypto pairs with a slash in
//! market data and orders (`BTC/USD`) and without it in positions and
//! position paths (`BTCUSD`); stocks are plain (`AAPL`).

use std::str::FromStr;

use trader_core::{ErrorKind, MarketError, Symbol};

/// Whether Alpaca treats the symbol as a crypto pair.
pub(crate) fn is_crypto(symbol: &Symbol) -> bool {
    symbol.as_str().contains('/')
}

/// The spelling for market-data queries and orders.
pub(crate) fn api_symbol(symbol: &Symbol) -> &str {
    symbol.as_str()
}

/// The spelling of positions (`BTCUSD`).
pub(crate) fn position_symbol(symbol: &Symbol) -> String {
    symbol.as_str().replace('/', "")
}

/// A symbol as Alpaca sent it, in either spelling; `crypto` says which
/// asset class the answer named.
pub(crate) fn parse(raw: &str, crypto: bool, request: &str) -> Result<Symbol, MarketError> {
    let parsed = if raw.contains('/') || !crypto {
        Symbol::from_str(raw)
    } else {
        Symbol::from_file_stem(raw)
    };
    parsed.map_err(|e| MarketError::new(ErrorKind::Malformed, request, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_meet() {
        let btc: Symbol = "BTC/USD".parse().unwrap();
        assert_eq!(position_symbol(&btc), "BTCUSD");
        assert_eq!(api_symbol(&btc), "BTC/USD");
        assert_eq!(parse("BTCUSD", true, "t").unwrap(), btc);
        assert_eq!(parse("BTC/USD", true, "t").unwrap(), btc);
        assert_eq!(parse("AAPL", false, "t").unwrap().as_str(), "AAPL");
        assert!(is_crypto(&btc));
        let e = parse("btc usd", true, "GET /v2/positions").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.to_string().contains("btc usd"), "{e}");
    }
}
