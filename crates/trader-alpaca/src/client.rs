//! [`AlpacaClient`]: every request goes through one limiter, one timeout and
//! one retry policy.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use trader_config::{AlpacaEndpoints, AlpacaKeys};
use trader_core::{ErrorKind, MarketError};

use crate::limiter::RequestLimiter;

/// The longest wait for a rate-limit window to reset (Alpaca's windows are
/// one minute).
const MAX_RESET_WAIT: Duration = Duration::from_secs(61);

/// Limits, timeouts and backoff of the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// Most requests in any one minute, for the client and its clones
    /// (Alpaca allows 200 per key).
    pub requests_per_minute: NonZeroU32,
    /// Requests that may go at once (counted within the minute's limit;
    /// at most half of it).
    pub burst: NonZeroU32,
    /// Every call gives up after this long.
    pub timeout: Duration,
    /// Retries after the first attempt of a GET (and of a lost placement).
    pub max_retries: usize,
    /// First backoff; it doubles per retry, with jitter, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Bars per page asked of the data API (Alpaca: at most 10,000).
    pub bars_page_limit: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            requests_per_minute: NonZeroU32::new(180).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            timeout: Duration::from_secs(10),
            max_retries: 6,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            bars_page_limit: 10_000,
        }
    }
}

impl ClientSettings {
    #[must_use]
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("trading URL {url:?}: {reason}")]
    TradingUrl { url: String, reason: String },
    #[error("the Alpaca keys contain characters not allowed in an HTTP header")]
    KeyHeader,
    #[error("building the HTTP client: {0}")]
    Http(String),
}

/// What the client went through, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Failed attempts by kind (each retried or returned).
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Placements answered by adopting the order already at the broker.
    pub adopted_orders: u64,
    /// Requests sent.
    pub requests: u64,
}

pub(crate) struct Inner {
    pub(crate) trading: apca::Client,
    pub(crate) http: reqwest::Client,
    pub(crate) trading_url: String,
    pub(crate) data_url: String,
    pub(crate) settings: ClientSettings,
    limiter: RequestLimiter,
    errors: Mutex<BTreeMap<ErrorKind, u64>>,
    pub(crate) adopted: AtomicU64,
    requests: AtomicU64,
}

/// The Alpaca client: trading through apca, market data through reqwest.
/// Clones share the limiter, so one client (and its clones) per process
/// keeps the whole process under the quota.
#[derive(Clone)]
pub struct AlpacaClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for AlpacaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlpacaClient")
            .field("trading_url", &self.inner.trading_url)
            .field("data_url", &self.inner.data_url)
            .field("keys", &"***")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl AlpacaClient {
    /// A client for `endpoints` with `keys`.
    ///
    /// # Errors
    /// An unusable trading URL, keys that cannot be sent as headers, or an
    /// HTTP client that cannot be built (TLS).
    pub fn new(
        endpoints: &AlpacaEndpoints,
        keys: &AlpacaKeys,
        settings: ClientSettings,
    ) -> Result<Self, ClientError> {
        let api_info = apca::ApiInfo::from_parts(
            &endpoints.trading_url,
            keys.key_id.expose(),
            keys.secret_key.expose(),
        )
        .map_err(|e| ClientError::TradingUrl {
            url: endpoints.trading_url.clone(),
            reason: e.to_string(),
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in [
            ("APCA-API-KEY-ID", keys.key_id.expose()),
            ("APCA-API-SECRET-KEY", keys.secret_key.expose()),
        ] {
            let mut v = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| ClientError::KeyHeader)?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let limiter = RequestLimiter::new(settings.requests_per_minute, settings.burst);
        Ok(AlpacaClient {
            inner: Arc::new(Inner {
                trading: apca::Client::new(api_info),
                http,
                trading_url: endpoints.trading_url.trim_end_matches('/').to_owned(),
                data_url: endpoints.data_url.trim_end_matches('/').to_owned(),
                settings,
                limiter,
                errors: Mutex::new(BTreeMap::new()),
                adopted: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// Counts so far.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            errors: self
                .inner
                .errors
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
            adopted_orders: self.inner.adopted.load(Ordering::Relaxed),
            requests: self.inner.requests.load(Ordering::Relaxed),
        }
    }

    /// One attempt: wait for the limiter, then run `call` under the timeout.
    pub(crate) async fn attempt<T>(
        &self,
        request: &str,
        call: impl Future<Output = Result<T, MarketError>>,
    ) -> Result<T, MarketError> {
        self.inner.limiter.ready().await;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let timeout = self.inner.settings.timeout;
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(MarketError::new(
                ErrorKind::Timeout,
                request,
                format!("no answer within {} ms", timeout.as_millis()),
            )),
        };
        if let Err(e) = &result
            && let Ok(mut errors) = self.inner.errors.lock()
        {
            *errors.entry(e.kind).or_insert(0) += 1;
        }
        result
    }

    /// A request that is safe to repeat: retried on timeouts, dropped
    /// connections, 5xx, 429 and malformed answers, with jittered
    /// exponential backoff, waiting at least until `X-RateLimit-Reset` when
    /// the server sent one.
    pub(crate) async fn idempotent<T, F, Fut>(
        &self,
        request: &str,
        mut call: F,
    ) -> Result<T, MarketError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MarketError>>,
    {
        (|| self.attempt(request, call()))
            .retry(self.inner.settings.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &MarketError| e.kind.is_transient())
            .adjust(|e: &MarketError, next: Option<Duration>| {
                next.map(|d| e.retry_after.map_or(d, |r| r.min(MAX_RESET_WAIT).max(d)))
            })
            .notify(|e: &MarketError, wait: Duration| {
                tracing::warn!(
                    request,
                    kind = e.kind.as_str(),
                    error = %e.detail,
                    retry_in_ms = wait.as_millis() as u64,
                    "retrying"
                );
            })
            .await
    }

    /// Backoff delays for a placement that must be tried again.
    pub(crate) fn placement_backoff(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        self.inner.settings.backoff().build()
    }
}
