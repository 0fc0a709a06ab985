//! Alpaca's per-key quota: `X-RateLimit-Limit/-Remaining/-Reset` on every
//! answer, 429 once a key has used its requests of the current minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use trader_core::{Clock, SystemClock};

use crate::faults::FaultInjector;
use crate::wire;

/// Alpaca's code for "too many requests".
const CODE_RATE_LIMITED: u32 = 42_910_000;
const WINDOW: Duration = Duration::from_mins(1);

/// Requests per key per minute of tokio's clock (fixed windows; real time
/// unless a test pauses the clock).
pub(crate) struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    log: Arc<FaultInjector>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, log: Arc<FaultInjector>) -> Self {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
            log,
        }
    }

    /// Counts one request of `key`: (allowed, remaining, seconds until reset).
    fn take(&self, key: &str) -> (bool, u32, u64) {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return (true, self.per_minute, WINDOW.as_secs());
        };
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let reset_in = WINDOW
            .saturating_sub(now.duration_since(entry.0))
            .as_secs()
            .max(1);
        if entry.1 >= self.per_minute {
            return (false, 0, reset_in);
        }
        entry.1 += 1;
        (true, self.per_minute - entry.1, reset_in)
    }
}

pub(crate) async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get("APCA-API-KEY-ID")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    limiter.log.record_request(&key);
    let (allowed, remaining, reset_in) = limiter.take(&key);
    let mut response = if allowed {
        next.run(request).await
    } else {
        limiter.log.record_quota_rejection();
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(wire::error(CODE_RATE_LIMITED, "rate limit exceeded")),
        )
            .into_response()
    };
    // Reset is in epoch seconds of the wall clock, as Alpaca sends it.
    let reset = SystemClock.now().timestamp().unsigned_abs() + reset_in;
    let headers = response.headers_mut();
    for (name, value) in [
        ("X-RateLimit-Limit", u64::from(limiter.per_minute)),
        ("X-RateLimit-Remaining", u64::from(remaining)),
        ("X-RateLimit-Reset", reset),
    ] {
        // An injected 429 brings its own reset.
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from(value));
        }
    }
    response
}
