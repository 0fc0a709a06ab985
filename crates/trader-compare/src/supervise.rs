//! Child processes that end with their parent. Each child is the leader of
//! its own process group and is held by a [`Supervised`] guard that kills
//! the group when dropped (an error, a panic, an early return); the waits
//! here check the [`Stop`] the caller raises on SIGTERM and SIGINT and turn
//! it into an error that unwinds to those guards. Without `unsafe` there is
//! no `PR_SET_PDEATHSIG`: a parent killed with SIGKILL still leaves its
//! children running.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::stop::{POLL, Stop};

/// A child process in its own process group, whose piped stdout (as lines)
/// and stderr are read as they come, so that it never blocks on a full pipe.
/// Dropped while running: its group is killed and it is reaped.
pub(crate) struct Supervised {
    name: String,
    child: Child,
    stdout: Option<Receiver<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Supervised {
    /// Starts `cmd` as the leader of a new process group. Set its stdout and
    /// stderr to [`Stdio::piped`] to read them here.
    pub(crate) fn spawn(cmd: &mut Command, name: &str) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().map(|out| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        Ok(Supervised {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    /// The process id (and process group id).
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of its stdout; `None` when it closed stdout or printed
    /// nothing within `timeout`.
    pub(crate) fn next_line(
        &mut self,
        stop: &Stop,
        timeout: Duration,
    ) -> anyhow::Result<Option<String>> {
        let Some(rx) = &self.stdout else {
            return Ok(None);
        };
        let deadline = Instant::now() + timeout;
        loop {
            stop.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match rx.recv_timeout(left.min(POLL)) {
                Ok(line) => return Ok(Some(line)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }

    /// Waits for it to exit; on a signal to the parent, an error (the guard
    /// then kills it).
    pub(crate) fn wait(&mut self, stop: &Stop) -> anyhow::Result<ExitStatus> {
        loop {
            stop.check()?;
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Asks it to end: SIGTERM to its group.
    pub(crate) fn request_end(&mut self) -> anyhow::Result<()> {
        if self.try_wait()?.is_none() {
            signal_group(self.id(), "TERM");
        }
        Ok(())
    }

    /// Waits up to `grace` for it to exit, then kills its group.
    pub(crate) fn wait_or_kill(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
        if self.try_wait()?.is_none() {
            tracing::warn!(child = %self.name, grace_secs = grace.as_secs_f64(), "still running; killing it");
        }
        self.kill_and_wait()
    }

    /// Kills its group now and reaps it.
    pub(crate) fn kill_and_wait(&mut self) -> anyhow::Result<ExitStatus> {
        self.kill();
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// Everything it printed on stdout that was not read yet (after it exited).
    pub(crate) fn stdout_text(&mut self) -> String {
        self.stdout
            .take()
            .map(|rx| rx.iter().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Everything it printed on stderr (after it exited).
    pub(crate) fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// SIGKILL to its group (while it is not reaped its group id cannot be
    /// reused), then to it directly in case `kill` is not installed.
    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.id(), "KILL");
            let _ = self.child.kill();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            tracing::debug!(child = %self.name, pid = self.id(), "killing a child left running");
            self.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` (TERM, KILL) to process group `pgid` with the system's
/// `kill` (a safe call: libc's `kill` is `unsafe`, denied in this workspace).
fn signal_group(pgid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        tracing::debug!(pgid, signal, "kill of the process group failed");
    }
}
