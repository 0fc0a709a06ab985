//! The stop of a comparison: a flag the caller raises when this process gets
//! SIGTERM or SIGINT (the caller installs the listener), which every wait on
//! a child checks and turns into [`Interrupted`], an error that unwinds to
//! the guards of the children (`supervise.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How often a waiting parent looks at its children and at [`Stop`].
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The error of a wait that SIGTERM or SIGINT cut short (the command ends
/// with exit 130).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by {}: its child processes were stopped",
            self.0
        )
    }
}

impl std::error::Error for Interrupted {}

/// The signals that stop a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (2).
    Interrupt,
    /// SIGTERM (15).
    Terminate,
}

impl Signal {
    /// Its number.
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }
}

/// SIGTERM or SIGINT received by this process: raised by the caller's
/// listener, read by every wait here. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// 0 until a signal, then its number.
    raised: Arc<AtomicU8>,
}

impl Stop {
    /// A stop not raised yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `signal`; the first one raised is kept.
    pub fn raise(&self, signal: Signal) {
        let _ =
            self.raised
                .compare_exchange(0, signal.number(), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal received, if any.
    #[must_use]
    pub fn raised(&self) -> Option<&'static str> {
        match self.raised.load(Ordering::SeqCst) {
            0 => None,
            2 => Some("SIGINT"),
            _ => Some("SIGTERM"),
        }
    }

    /// [`Interrupted`] when a signal was received.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.raised() {
            Some(signal) => Err(Interrupted(signal).into()),
            None => Ok(()),
        }
    }

    /// Sleeps until `deadline`, or returns the error of [`Stop::check`].
    pub fn sleep_until(&self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(POLL));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_raised_is_the_one_reported() {
        let stop = Stop::new();
        assert!(stop.check().is_ok());
        let seen_by_a_wait = stop.clone();
        stop.raise(Signal::Terminate);
        stop.raise(Signal::Interrupt);
        assert_eq!(seen_by_a_wait.raised(), Some("SIGTERM"));
        let err = seen_by_a_wait.check().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("interrupted by SIGTERM: its child processes were stopped")
        );
    }
}
