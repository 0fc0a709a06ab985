//! Fault injection and the request log.
//!
//! Each request draws once from a seeded generator (same seed, same request
//! order: same faults) and may get one fault:
//! - `rate_limited`: 429 without being processed (its own `X-RateLimit-Reset`
//!   one second ahead);
//! - `server_error`: 500 without being processed;
//! - `slow`: processed only after `slow_delay` (set it past the client's
//!   timeout);
//! - `malformed`: processed, then answered 200 with truncated JSON;
//! - `dropped`: not processed, the connection closes after the headers;
//! - `lost_order_answer` (`POST /v2/orders` only): the order is accepted,
//!   then the connection closes before the answer: the case that makes a
//!   naive client buy twice.
//!
//! The log counts every request by key with its arrival time on tokio's clock
//! (so a test on a paused clock can check requests per minute), every fault
//! injected, and every order the broker accepted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use trader_core::{Clock, SystemClock};

use crate::wire;

/// Shares (0..=1) of requests that get each fault; they must sum to at most 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    pub rate_limited: f64,
    pub server_error: f64,
    pub slow: f64,
    /// How long a slow answer waits before the request is processed.
    pub slow_delay: Duration,
    pub malformed: f64,
    pub dropped: f64,
    /// Share of `POST /v2/orders` accepted whose answer is then lost.
    pub lost_order_answer: f64,
    /// Seed of the draw.
    pub seed: u64,
}

impl FaultConfig {
    /// Checks every share is in 0..=1 and the shares sum to at most 1.
    ///
    /// # Errors
    /// Names the first share out of range.
    pub fn validate(&self) -> Result<(), String> {
        let shares = [
            ("rate_limited", self.rate_limited),
            ("server_error", self.server_error),
            ("slow", self.slow),
            ("malformed", self.malformed),
            ("dropped", self.dropped),
            ("lost_order_answer", self.lost_order_answer),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("fault share {name} = {v} must be between 0 and 1"));
            }
        }
        let sum: f64 = shares[..5].iter().map(|(_, v)| v).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "fault shares rate_limited+server_error+slow+malformed+dropped sum to {sum}, over 1"
            ));
        }
        Ok(())
    }

    fn is_active(&self) -> bool {
        self.rate_limited
            + self.server_error
            + self.slow
            + self.malformed
            + self.dropped
            + self.lost_order_answer
            > 0.0
    }
}

/// A fault the simulator injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    RateLimited,
    ServerError,
    Slow,
    Malformed,
    Dropped,
    LostOrderAnswer,
}

impl Fault {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::RateLimited => "rate_limited",
            Fault::ServerError => "server_error",
            Fault::Slow => "slow",
            Fault::Malformed => "malformed",
            Fault::Dropped => "dropped",
            Fault::LostOrderAnswer => "lost_order_answer",
        }
    }
}

/// What the simulator saw, for tests and the CLI.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Arrival times of every request per key id, on tokio's clock, since
    /// the simulator started.
    pub requests: BTreeMap<String, Vec<Duration>>,
    /// 429s answered because a key was over its real quota.
    pub quota_rejections: u64,
    pub faults: BTreeMap<Fault, u64>,
    /// `client_order_id` of every order accepted, in order of acceptance.
    pub orders_accepted: Vec<String>,
}

impl SimStats {
    /// The most requests one key sent within any window of `window`.
    #[must_use]
    pub fn max_requests_in_window(&self, key: &str, window: Duration) -> usize {
        let Some(times) = self.requests.get(key) else {
            return 0;
        };
        let mut best = 0;
        let mut lo = 0;
        for (hi, t) in times.iter().enumerate() {
            while t.saturating_sub(times[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

pub(crate) struct FaultInjector {
    config: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    started: tokio::time::Instant,
    pub(crate) stats: Mutex<SimStats>,
}

impl FaultInjector {
    pub(crate) fn new(config: FaultConfig) -> Self {
        let rng = fastrand::Rng::with_seed(config.seed);
        FaultInjector {
            config,
            rng: Mutex::new(rng),
            started: tokio::time::Instant::now(),
            stats: Mutex::new(SimStats::default()),
        }
    }

    pub(crate) fn record_request(&self, key: &str) {
        let at = self.started.elapsed();
        if let Ok(mut s) = self.stats.lock() {
            s.requests.entry(key.to_owned()).or_default().push(at);
        }
    }

    pub(crate) fn record_quota_rejection(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.quota_rejections += 1;
        }
    }

    pub(crate) fn record_order(&self, client_order_id: &str) {
        if let Ok(mut s) = self.stats.lock() {
            s.orders_accepted.push(client_order_id.to_owned());
        }
    }

    fn record_fault(&self, fault: Fault) {
        tracing::debug!(fault = fault.as_str(), "injecting a fault");
        if let Ok(mut s) = self.stats.lock() {
            *s.faults.entry(fault).or_insert(0) += 1;
        }
    }

    fn draw(&self, is_order: bool) -> Option<Fault> {
        if !self.config.is_active() {
            return None;
        }
        let (r, r_order) = match self.rng.lock() {
            Ok(mut rng) => (rng.f64(), rng.f64()),
            Err(_) => return None,
        };
        let c = &self.config;
        let mut edge = 0.0;
        for (share, fault) in [
            (c.rate_limited, Fault::RateLimited),
            (c.server_error, Fault::ServerError),
            (c.slow, Fault::Slow),
            (c.malformed, Fault::Malformed),
            (c.dropped, Fault::Dropped),
        ] {
            edge += share;
            if r < edge {
                return Some(fault);
            }
        }
        (is_order && r_order < c.lost_order_answer).then_some(Fault::LostOrderAnswer)
    }
}

/// A 200 whose body fails after the headers: the client sees the
/// connection close mid-answer.
fn dropped_connection() -> Response {
    let body = Body::from_stream(futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injected: connection dropped",
        ))
    }));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

pub(crate) async fn inject(
    State(injector): State<Arc<FaultInjector>>,
    request: Request,
    next: Next,
) -> Response {
    let is_order = request.method() == Method::POST && request.uri().path() == "/v2/orders";
    let Some(fault) = injector.draw(is_order) else {
        return next.run(request).await;
    };
    injector.record_fault(fault);
    match fault {
        Fault::RateLimited => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(wire::error(42_910_000, "rate limit exceeded")),
            )
                .into_response();
            let reset = SystemClock.now().timestamp().unsigned_abs() + 1;
            response
                .headers_mut()
                .insert("X-RateLimit-Reset", HeaderValue::from(reset));
            response
        }
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(wire::error(50_010_000, "internal server error (injected)")),
        )
            .into_response(),
        Fault::Slow => {
            tokio::time::sleep(injector.config.slow_delay).await;
            next.run(request).await
        }
        Fault::Malformed => {
            let answered = next.run(request).await;
            let mut response = Response::new(Body::from("{\"malformed\": [1, 2"));
            *response.status_mut() = answered.status();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        Fault::Dropped => dropped_connection(),
        Fault::LostOrderAnswer => {
            let _accepted = next.run(request).await;
            dropped_connection()
        }
    }
}
