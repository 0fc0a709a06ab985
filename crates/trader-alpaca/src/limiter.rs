//! The one request limiter of the process: a governor GCRA quota on tokio's
//! clock, so it also runs (and is tested) on a paused clock.

use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A point on tokio's clock, as governor wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(
            self.0
                .checked_sub(Duration::from(duration))
                .unwrap_or(self.0),
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> Self::Instant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// Waits until the quota allows one more request.
pub struct RequestLimiter {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>,
}

impl RequestLimiter {
    /// At most `per_minute` requests in any minute, up to `burst` of them at
    /// once. GCRA lets a full burst plus a minute of replenishment through
    /// in one sliding minute, so the rate is set to `per_minute - burst`
    /// per minute (the burst is capped at half the limit).
    #[must_use]
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        let burst = burst.min(NonZeroU32::new(per_minute.get() / 2).unwrap_or(NonZeroU32::MIN));
        let refill = NonZeroU32::new(per_minute.get() - burst.get()).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_mins(1) / refill.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(refill))
            .allow_burst(burst);
        RequestLimiter {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
        }
    }

    /// Returns once a request may be sent.
    pub async fn ready(&self) {
        loop {
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(TokioClock.now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
