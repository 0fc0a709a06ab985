//! SIGINT and SIGTERM, listened for inside a tokio runtime: the one
//! listener of `trader run` (the engine's [`Stop`]) and `trader data import`
//! (a flag read at each batch boundary). `compare`'s children have their own
//! listener (`compare/mod.rs`, blocking waits in trader-compare's
//! `supervise.rs`, no runtime).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use trader_engine::{Stop, stop_pair};

/// Resolves once SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Starts listening (inside the runtime) and returns the stop every wait of
/// a run watches.
pub(crate) fn stop_on_signal() -> Stop {
    let (handle, stop) = stop_pair();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("signal received: stopping");
        handle.stop();
    });
    stop
}

/// Starts listening (inside the runtime) and returns a flag set by the
/// signal, for work that stops at its next boundary.
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    tokio::spawn(async move {
        shutdown_signal().await;
        set.store(true, Ordering::SeqCst);
    });
    flag
}
