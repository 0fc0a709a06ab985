//! `trader compare` stopped with SIGTERM takes its children with it: no
//! backtest, simulator or trader outlives it, and nothing half-written is
//! left in its output folder.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// (pid, start time in clock ticks) of the live processes whose parent is
/// `parent`, from /proc.
fn children_of(parent: u32) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, ppid, start)) = stat(pid)
            && ppid == parent
            && state != "Z"
        {
            out.push((pid, start));
        }
    }
    out
}

/// State, parent pid and start time of `pid` (fields 3, 4 and 22 of
/// /proc/PID/stat), if it exists.
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its ')'.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields[0].to_owned(),
        fields[1].parse().ok()?,
        fields[19].parse().ok()?,
    ))
}

/// Whether this very process (pid and start time) still runs.
fn alive((pid, start): (u32, u64)) -> bool {
    stat(pid).is_some_and(|(state, _, s)| s == start && state != "Z")
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
fn within(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn compare(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(dir)
        .args([
            "--config-dir",
            "configs",
            "compare",
            "--profiles",
            "full,lean",
        ])
        .args(["--out", "cmp"])
        .args(extra)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to `child` once it has `n` children, then checks that it
/// exits within a few seconds and that none of those children remains.
fn sigterm_takes_the_children(mut child: Child, n: usize) {
    let pid = child.id();
    let mut kids = Vec::new();
    assert!(
        within(60, || {
            kids = children_of(pid);
            kids.len() >= n
        }),
        "compare never had {n} children"
    );
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(
        within(15, || child.try_wait().unwrap().is_some()),
        "compare still runs 15 s after SIGTERM"
    );
    let status = child.wait().unwrap();
    // 130: stopped by a signal before its work was done.
    assert_eq!(status.code(), Some(130), "{status:?}");
    let gone = within(5, || kids.iter().all(|k| !alive(*k)));
    let left: Vec<_> = kids.iter().copied().filter(|k| alive(*k)).collect();
    for (pid, _) in &left {
        // Not left running by a failing test.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(gone, "children outlived compare: {left:?}");
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn sigterm_to_compare_kills_its_backtest_and_leaves_no_half_written_output() {
    let sb = sandbox();
    // The whole recorded set: the first backtest runs for seconds.
    let data = repo().join("data/coinbase_2017_2018").display().to_string();
    let child = compare(sb.path(), &["--data", &data]);
    sigterm_takes_the_children(child, 1);
    // A backtest that outlived its parent would write here later.
    std::thread::sleep(Duration::from_millis(500));
    let left = files_under(&sb.path().join("cmp"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn sigterm_to_compare_live_ends_the_simulator_and_both_traders() {
    let sb = sandbox();
    let data = repo().join("data/coinbase_2017_2018").display().to_string();
    let child = compare(
        sb.path(),
        &[
            "--live",
            "--data",
            &data,
            "--duration-secs",
            "120",
            "--start",
            "2018-09-01T00:10:00Z",
        ],
    );
    sigterm_takes_the_children(child, 3);
    let left = files_under(&sb.path().join("cmp"));
    assert!(
        !left
            .iter()
            .any(|f| f.ends_with("metrics.json") || f.ends_with("report.json")),
        "{left:?}"
    );
    assert!(!sb.path().join("cmp/sim-keys.toml").exists());
}
