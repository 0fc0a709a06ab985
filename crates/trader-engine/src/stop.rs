//! Stopping a run: a [`StopHandle`] (SIGINT/SIGTERM in the CLI, a test's
//! own call) and the [`Stop`] flag the loops watch.

use std::future::Future;

/// Asks a run to stop (SIGINT/SIGTERM in the CLI; a test's own call).
#[derive(Debug, Clone)]
pub struct StopHandle(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

/// What a run watches for a stop.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

/// A stop request and the flag it sets.
#[must_use]
pub fn stop_pair() -> (StopHandle, Stop) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (StopHandle(std::sync::Arc::new(tx)), Stop(rx))
}

impl StopHandle {
    /// Requests the stop (again: no effect).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Whether a stop was requested.
    #[must_use]
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is requested (never, if every handle is gone
    /// without one).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// `work`, unless a stop is requested first (then None, and `work` is
    /// dropped at its current await).
    pub async fn unless<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.wait() => None,
            v = work => Some(v),
        }
    }
}
