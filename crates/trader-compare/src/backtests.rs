//! `trader compare` without `--live`: each profile's `trader backtest` in
//! its own child process (so each peak RSS is its own), one after the
//! other, into `out/NAME/`.

use std::process::{Command, Stdio};

use anyhow::bail;
use trader_files as files;

use crate::supervise::Supervised;
use crate::{Comparison, Stop, profile_name};

/// Runs each profile's backtest in its own process into `out/NAME/`;
/// returns the names.
pub(crate) fn produce(c: &Comparison, stop: &Stop) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for profile in &c.profiles {
        let name = profile_name(profile);
        let dir = c.out.join(&name);
        let mut cmd = Command::new(&c.trader_exe);
        cmd.arg("--config-dir")
            .arg(&c.config_dir)
            .args(["backtest", "--profile", profile, "--json", "--out"])
            .arg(&dir)
            .arg("--data")
            .arg(&c.data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(f) = &c.from {
            cmd.args(["--from", f]);
        }
        if let Some(t) = &c.to {
            cmd.args(["--to", t]);
        }
        // The child is gone when `run_child` returns: what it left
        // half-written goes (its finished files replace the old ones whole
        // or not at all).
        run_child(&mut cmd, profile, stop).inspect_err(|_| {
            let _ = files::remove_stale(&dir);
        })?;
        names.push(name);
    }
    Ok(names)
}

/// Runs one backtest child to its end (or kills it on a signal).
fn run_child(cmd: &mut Command, profile: &str, stop: &Stop) -> anyhow::Result<()> {
    let mut child = Supervised::spawn(cmd, &format!("the backtest of {profile}"))?;
    let status = child.wait(stop)?;
    if !status.success() {
        bail!(
            "the backtest of {profile} failed ({status}): {}",
            child.stderr_text().trim()
        );
    }
    Ok(())
}
