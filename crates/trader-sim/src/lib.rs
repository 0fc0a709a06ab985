//! An Alpaca-compatible paper broker and market-data server over recorded
//! bars, on 127.0.0.1 (axum). It speaks Alpaca's REST shapes well enough that
//! the real client code (and Alpaca's SDKs) can run against it on loopback:
//! the embedded default that lets `trader` work on a machine with no account,
//! and the counterpart of the client's tests.
//!
//! Endpoints: `GET /v2/account`, `GET /v2/account/activities` (fills),
//! `GET|DELETE /v2/positions` and `/v2/positions/{symbol}` (close),
//! `POST /v2/orders` (market with `qty` or `notional`; limit and stop-limit
//! with `qty`; gtc or ioc), `GET /v2/orders` (`status`, `limit`, `after`,
//! `until`, `direction`, `symbols`, `side`, `nested`), `DELETE /v2/orders`,
//! `GET|PATCH|DELETE /v2/orders/{id}`, `GET /v2/orders:by_client_order_id`,
//! `GET /v2/clock`, `GET /v2/assets/{symbol}`, `GET /v1beta3/crypto/us/bars`
//! and `GET /v2/stocks/bars` with pagination.
//! Auth by `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` (401 otherwise), one
//! account per key pair with $100,000, a replay clock over the recorded set,
//! fills by the recorded bars (`fills.rs`: market orders at the next bar's
//! open, limits at the limit or better once a bar reaches it) with Alpaca's
//! crypto fee (25 bps of the asset received), 422 on a duplicate
//! `client_order_id`, 403 on insufficient buying power or quantity,
//! `X-RateLimit-*` headers on every answer and 429 past a key's quota per
//! real minute. Only bars closed by the replay clock are served. Decimals are
//! accepted as JSON numbers or strings (`decimal.rs`) and answered as strings.
//! A key id given twice and a bar with a NaN or non-positive price are
//! refused at start.
//!
//! Its wire types are its own (`wire.rs`), never the client's, so a serde
//! mistake cannot hide on both sides at once.
//!
//! Faults can be injected by share of requests ([`FaultConfig`]: 429, 500,
//! slow answers, malformed JSON, dropped connections, orders accepted whose
//! answer is lost), and every request, fault and accepted order is logged
//! ([`SimHandle::stats`]).
//!
//! [`PaperBroker`] is the same accounts and fill model in process, as a
//! `trader_core::Broker`, for backtests.
//!
//! Tests: `tests/sim/{sim,orders,inputs}.rs` (reqwest over loopback, a manual
//! clock); `scripts/sdk_conformance.sh` drives it with Alpaca's alpaca-py.

mod activities;
mod bars;
mod broker;
mod clock;
mod decimal;
mod faults;
mod fills;
mod orders;
mod paper;
mod positions;
mod ratelimit;
mod replay;
mod routes;
mod submit;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use broker::FEE_BPS;
pub use clock::ReplayClock;
pub use faults::{Fault, FaultConfig, SimStats};
pub use paper::PaperBroker;
pub use replay::{
    DEFAULT_REPLAY_DAYS, DEFAULT_REPLAY_SECONDS, EmbeddedReplay, ReplayError, ReplaySpan,
};
use trader_core::{Bar, Clock, Symbol};

/// A key pair the simulator accepts; each pair has its own account.
#[derive(Clone, PartialEq, Eq)]
pub struct SimKeys {
    pub key_id: String,
    pub secret_key: String,
}

impl std::fmt::Debug for SimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SimKeys {{ key_id: {:?}, secret_key: *** }}",
            self.key_id
        )
    }
}

/// What the simulator serves.
pub struct SimConfig {
    /// Recorded bars per symbol, oldest first.
    pub bars: BTreeMap<Symbol, Vec<Bar>>,
    pub accounts: Vec<SimKeys>,
    /// Starting cash of every account, in USD.
    pub starting_cash: f64,
    /// The simulated "now".
    pub clock: Arc<dyn Clock>,
    /// Requests per key per real minute before 429 (Alpaca: 200).
    pub rate_limit_per_minute: u32,
    /// Faults to inject (none by default).
    pub faults: FaultConfig,
}

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding the simulator to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator needs at least one key pair")]
    NoAccounts,
    #[error("{0}")]
    Faults(String),
    #[error(
        "key id {0:?} is given twice (the keys file and APCA_API_KEY_ID, or the file twice); each key pair is one account"
    )]
    DuplicateKeyId(String),
    #[error("the recorded {symbol} bars: {source}")]
    BadBar {
        symbol: Symbol,
        #[source]
        source: Box<trader_core::BarError>,
    },
}

/// Refuses a key id given twice (each pair is one account; a second pair
/// with the same id would silently replace the first).
///
/// # Errors
/// [`SimError::DuplicateKeyId`] naming the first repeated id.
pub fn check_keys(keys: &[SimKeys]) -> Result<(), SimError> {
    let mut seen = std::collections::BTreeSet::new();
    for k in keys {
        if !seen.insert(k.key_id.as_str()) {
            return Err(SimError::DuplicateKeyId(k.key_id.clone()));
        }
    }
    Ok(())
}

/// Refuses a bar whose price is not a finite positive number (or whose
/// volume is not finite), naming the symbol and the hour: the simulator
/// would otherwise serve `"c": null`. Bars from `trader-recorded` have been
/// refused earlier with the file and the line; this guards other callers.
///
/// # Errors
/// [`SimError::BadBar`] for the first such bar.
pub fn check_bars(bars: &BTreeMap<Symbol, Vec<Bar>>) -> Result<(), SimError> {
    use trader_core::BarError;
    for (symbol, series) in bars {
        for bar in series {
            if let Err(e @ (BarError::NonFinite { .. } | BarError::NonPositive { .. })) =
                bar.validate(chrono::DateTime::<chrono::Utc>::MAX_UTC)
            {
                return Err(SimError::BadBar {
                    symbol: symbol.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}

/// A running simulator.
pub struct SimHandle {
    /// Where it listens (127.0.0.1 and the port it got).
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    log: Arc<faults::FaultInjector>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, the base URL for both trading and data.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the simulator has seen so far: requests per key, faults
    /// injected, orders accepted.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.log.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts the simulator on `127.0.0.1:port` (0: any free port).
///
/// # Errors
/// No key pair configured, a key id given twice, a bar with a price that is
/// not a finite positive number, or the port cannot be bound.
pub async fn serve(config: SimConfig, port: u16) -> Result<SimHandle, SimError> {
    if config.accounts.is_empty() {
        return Err(SimError::NoAccounts);
    }
    check_keys(&config.accounts)?;
    check_bars(&config.bars)?;
    config.faults.validate().map_err(SimError::Faults)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let log = Arc::new(faults::FaultInjector::new(config.faults));
    let state = Arc::new(routes::AppState {
        market: bars::Market::new(config.bars),
        broker: Mutex::new(broker::Broker::new(&config.accounts, config.starting_cash)),
        clock: config.clock,
        log: Arc::clone(&log),
    });
    let limiter = Arc::new(ratelimit::RateLimiter::new(
        config.rate_limit_per_minute,
        Arc::clone(&log),
    ));
    // Outermost first: the quota sees every request, then faults, then routes.
    let app = routes::router(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&log),
            faults::inject,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            ratelimit::limit,
        ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    tracing::info!(%addr, "simulator listening");
    Ok(SimHandle {
        addr,
        shutdown: Some(tx),
        task,
        log,
    })
}
