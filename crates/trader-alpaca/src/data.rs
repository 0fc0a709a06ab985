//! Market data through reqwest: crypto bars (`/v1beta3/crypto/us/bars`) and
//! stock bars (`/v2/stocks/bars`, IEX feed), several symbols per request,
//! paged until `next_page_token` is null. apca's data module cannot do this
//! (one stock per request, integer volume, fixed host).
//!
//! Public only for [`parse_bars_page`], which the fixture tests use.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::Deserialize;
use trader_core::{
    Bar, BarsBySymbol, Clock, ErrorKind, MarketData, MarketError, Symbol, SystemClock,
};

use crate::client::AlpacaClient;
use crate::symbols;

/// One page of Alpaca's bars answer.
#[derive(Debug, Deserialize)]
pub(crate) struct BarsPage {
    #[serde(default)]
    pub(crate) bars: Option<BTreeMap<String, Vec<WireBar>>>,
    #[serde(default)]
    pub(crate) next_page_token: Option<String>,
}

/// One bar as Alpaca writes it; `n` and `vw` are not used.
#[derive(Debug, Deserialize)]
pub(crate) struct WireBar {
    pub(crate) t: String,
    pub(crate) o: f64,
    pub(crate) h: f64,
    pub(crate) l: f64,
    pub(crate) c: f64,
    pub(crate) v: f64,
}

impl WireBar {
    fn to_bar(&self, request: &str) -> Result<Bar, MarketError> {
        let t = DateTime::parse_from_rfc3339(&self.t)
            .map_err(|e| {
                MarketError::new(
                    ErrorKind::Malformed,
                    request,
                    format!("bar time {:?}: {e}", self.t),
                )
            })?
            .timestamp();
        Ok(Bar {
            t,
            open: self.o,
            high: self.h,
            low: self.l,
            close: self.c,
            volume: self.v,
        })
    }
}

/// `X-RateLimit-Reset` (epoch seconds) as a wait from now.
fn reset_wait(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let reset: i64 = headers
        .get("X-RateLimit-Reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let now = SystemClock.now().timestamp();
    Some(std::time::Duration::from_secs(
        reset.saturating_sub(now).max(0).unsigned_abs(),
    ))
}

/// The message of an Alpaca error body (`{"code":..,"message":..}`), or the
/// body itself, shortened.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ApiMessage {
        message: String,
    }
    match serde_json::from_slice::<ApiMessage>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// Parses one bars answer as the client does (for the recorded examples).
///
/// # Errors
/// The answer is not Alpaca's bars JSON, or a bar time is not RFC 3339.
pub fn parse_bars_page(body: &[u8]) -> Result<(BarsBySymbol, Option<String>), MarketError> {
    let request = "bars answer";
    let page: BarsPage = serde_json::from_slice(body)
        .map_err(|e| MarketError::new(ErrorKind::Malformed, request, e.to_string()))?;
    let mut out = BarsBySymbol::new();
    for (raw, bars) in page.bars.unwrap_or_default() {
        let symbol = symbols::parse(&raw, raw.contains('/'), request)?;
        let list = bars
            .iter()
            .map(|b| b.to_bar(request))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(symbol, list);
    }
    Ok((out, page.next_page_token))
}

fn transport(request: &str, e: &reqwest::Error) -> MarketError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    // reqwest's message names the URL (no credentials: keys go in headers).
    MarketError::new(kind, request, e.to_string())
}

impl AlpacaClient {
    async fn bars_page(
        &self,
        request: &str,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<BarsPage, MarketError> {
        let response = self
            .inner
            .http
            .get(url)
            .query(query)
            .send()
            .await
            .map_err(|e| transport(request, &e))?;
        let status = response.status();
        let retry_after = reset_wait(response.headers());
        let body = response.bytes().await.map_err(|e| transport(request, &e))?;
        if !status.is_success() {
            let mut e = MarketError::new(
                MarketError::kind_of_status(status.as_u16()),
                request,
                format!("HTTP {}: {}", status.as_u16(), error_message(&body)),
            )
            .with_status(status.as_u16());
            // The reset matters only when the quota was the reason.
            if status.as_u16() == 429 {
                e.retry_after = retry_after;
            }
            return Err(e);
        }
        serde_json::from_slice(&body).map_err(|e| {
            MarketError::new(ErrorKind::Malformed, request, format!("bars answer: {e}"))
                .with_status(status.as_u16())
        })
    }

    /// Every bar of `symbols` (all of one asset class) from `start` to
    /// `end`, page after page.
    async fn bars_of_class(
        &self,
        path: &str,
        symbols: &[&Symbol],
        start: i64,
        end: i64,
        out: &mut BarsBySymbol,
    ) -> Result<(), MarketError> {
        let url = format!("{}{path}", self.inner.data_url);
        let crypto = path.contains("crypto");
        let list: Vec<&str> = symbols.iter().map(|s| symbols::api_symbol(s)).collect();
        let mut query = vec![
            ("symbols", list.join(",")),
            ("timeframe", "1Hour".to_owned()),
            ("start", rfc3339(start)),
            ("end", rfc3339(end)),
            ("limit", self.inner.settings.bars_page_limit.to_string()),
            ("sort", "asc".to_owned()),
        ];
        if !crypto {
            query.push(("feed", "iex".to_owned()));
        }
        let mut token: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let mut q = query.clone();
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let request = format!("GET {path} page {}", pages + 1);
            let page = self
                .idempotent(&request, || self.bars_page(&request, &url, &q))
                .await?;
            pages += 1;
            for (raw, bars) in page.bars.unwrap_or_default() {
                let symbol = symbols::parse(&raw, crypto, &request)?;
                let list = out.entry(symbol).or_default();
                for b in &bars {
                    list.push(b.to_bar(&request)?);
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) == token.as_ref() => {
                    return Err(MarketError::new(
                        ErrorKind::Malformed,
                        request,
                        "next_page_token repeats the token just used",
                    ));
                }
                Some(t) => token = Some(t),
                None => break,
            }
        }
        tracing::debug!(path, pages, "bars fetched");
        Ok(())
    }
}

fn rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl MarketData for AlpacaClient {
    async fn bars(
        &self,
        symbols: &[Symbol],
        start: i64,
        end: i64,
    ) -> Result<BarsBySymbol, MarketError> {
        let mut out = BarsBySymbol::new();
        let (crypto, stocks): (Vec<&Symbol>, Vec<&Symbol>) =
            symbols.iter().partition(|s| symbols::is_crypto(s));
        if !crypto.is_empty() {
            self.bars_of_class("/v1beta3/crypto/us/bars", &crypto, start, end, &mut out)
                .await?;
        }
        if !stocks.is_empty() {
            self.bars_of_class("/v2/stocks/bars", &stocks, start, end, &mut out)
                .await?;
        }
        for bars in out.values_mut() {
            bars.sort_by_key(|b| b.t);
            bars.dedup_by_key(|b| b.t);
        }
        Ok(out)
    }
}
