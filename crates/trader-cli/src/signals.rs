//! SIGINT and SIGTERM (and SIGHUP: `trader run` looks at its ensemble
//! directory), the CLI's one place that listens for them: inside a
//! tokio runtime for `trader run` (the engine's [`Stop`]) and `trader data
//! import` (a flag read at each batch boundary), and on a thread of its own
//! for `trader compare`, whose waits on its children are blocking
//! ([`blocking_stop_on_signal`]: trader-compare's stop, which keeps which
//! signal came).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
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

/// Starts listening for SIGHUP (inside the runtime): each one pulls the
/// returned trigger, which makes `trader run` look at its ensemble
/// directory at once. A process that cannot listen gets a trigger nobody
/// pulls (the directory is still checked at every poll).
pub(crate) fn reload_on_sighup() -> Arc<tokio::sync::Notify> {
    let trigger = Arc::new(tokio::sync::Notify::new());
    let pull = Arc::clone(&trigger);
    match signal(SignalKind::hangup()) {
        Ok(mut hangup) => {
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: looking at the ensemble directory");
                    pull.notify_one();
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "SIGHUP cannot be listened for"),
    }
    trigger
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

/// From now on SIGTERM and SIGINT raise the returned stop instead of ending
/// this process at once (its children would be left behind). Blocking waits,
/// no runtime of the command's: the listener has its own, on a thread.
pub(crate) fn blocking_stop_on_signal() -> anyhow::Result<trader_compare::Stop> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal listener")?;
    // Registered here, before any child is started.
    let (mut term, mut int) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        )
    };
    let stop = trader_compare::Stop::new();
    let raise = stop.clone();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                let received = tokio::select! {
                    _ = term.recv() => trader_compare::Signal::Terminate,
                    _ = int.recv() => trader_compare::Signal::Interrupt,
                };
                raise.raise(received);
            });
        })
        .context("starting the signal listener")?;
    Ok(stop)
}
