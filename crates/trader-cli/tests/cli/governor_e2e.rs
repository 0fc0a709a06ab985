//! `trader train --exec` under the governor with real processes (issue 17):
//! copies of `scripts/alloc_worker.py` grow step by step within a
//! `--ram-pool` sized so that exactly `K` of them fit; one trial leaks past
//! the host file's `process_rss`. The test samples the workers' RSS in
//! `/proc` while the search runs and reads the script's log afterwards:
//! never more than `K` alive at once, their RSS together never over the
//! pool by more than one step, every trial run once and done, the memory
//! leak alert raised for the leaking worker, exit 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{json, repo, stderr};

const MB: u64 = 1_000_000;
/// What each step of a worker allocates (and writes).
const STEP: u64 = 16 * MB;
const STEPS: u64 = 4;
const STEP_SECS: &str = "0.15";
/// Workers that fit in the pool.
const K: u64 = 3;
const TRIALS: u32 = 9;
/// At most this many by the worker count: memory is what bounds them.
const MAX_WORKERS: u32 = 5;
const LEAK_TRIAL: u32 = 4;
/// The leaking trial's steps after the usual ones.
const LEAK_STEPS: u64 = 3;
/// The longest the search may take (it takes about 3 s).
const DEADLINE: Duration = Duration::from_mins(1);

fn script() -> PathBuf {
    repo().join("scripts/alloc_worker.py")
}

/// The interpreter's own RSS running the script, bytes.
fn python_rss() -> u64 {
    let o = Command::new("python3")
        .arg(script())
        .arg("--print-rss")
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// The `VmRSS` of process `pid`, bytes (None: gone, or a zombie).
fn rss_of(pid: u32) -> Option<u64> {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Whether `pid` runs the script with this test's `marker` (not the
/// `trader` process, whose own command line holds the script's too).
fn is_ours(pid: u32, marker: &str) -> bool {
    let Ok(cmdline) = fs_err::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let python = args.first().is_some_and(|a| {
        Path::new(&*String::from_utf8_lossy(a))
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"))
    });
    python && args.contains(&marker.as_bytes())
}

/// This test's workers now, pid -> RSS.
fn workers(marker: &str) -> BTreeMap<u32, u64> {
    let Ok(dir) = fs_err::read_dir("/proc") else {
        return BTreeMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_ours(*pid, marker))
        .filter_map(|pid| Some((pid, rss_of(pid)?)))
        .collect()
}

/// The workers alive together and their RSS summed: those of one scan
/// that are still there after it were all alive at its end (a worker's RSS
/// only grows during its trial, so the sum is at most what they held then).
fn sample(marker: &str) -> (usize, u64) {
    let seen = workers(marker);
    let together: Vec<u64> = seen
        .iter()
        .filter(|(pid, _)| is_ours(**pid, marker) && rss_of(**pid).is_some())
        .map(|(_, rss)| *rss)
        .collect();
    (together.len(), together.iter().sum())
}

/// Kills `trader` and this test's workers when the test ends early.
struct Cleanup {
    child: Child,
    marker: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in workers(&self.marker).keys() {
            if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(*pid).unwrap_or(0)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// One line of the script's log.
#[derive(Debug, Clone, Copy)]
struct Event {
    start: bool,
    trial: u32,
    worker: u32,
    at_ns: u64,
    /// The worker's peak RSS (end lines).
    peak: u64,
}

fn events(log: &Path) -> Vec<Event> {
    fs_err::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let start = match f[0] {
                "start" => true,
                "end" => false,
                other => panic!("log line {line:?}: {other}"),
            };
            Event {
                start,
                trial: f[1].parse().unwrap(),
                worker: f[2].parse().unwrap(),
                at_ns: f[4].parse().unwrap(),
                peak: if start { 0 } else { f[5].parse().unwrap() },
            }
        })
        .collect()
}

/// The most trials between their start and end lines at once.
fn most_at_once(events: &[Event]) -> i64 {
    let mut edges: Vec<(u64, i64)> = events
        .iter()
        .map(|e| (e.at_ns, if e.start { 1 } else { -1 }))
        .collect();
    // An end and a start at the same instant: the end first.
    edges.sort_unstable();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

#[test]
// One scenario end to end: sizing, run, sampling and every check of it.
#[allow(clippy::too_many_lines)]
fn the_governor_keeps_real_workers_within_the_pool_and_reports_the_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let marker = format!("governor-e2e-{}-{nanos}", std::process::id());
    let log = tmp.path().join("workers.log");

    // One worker's peak, its demand (the peak plus the governor's 10 %
    // margin: what a measured worker will count for too), and a pool
    // halfway between K and K + 1 demands: K fit, K + 1 never do.
    let base = python_rss();
    let peak = base + STEPS * STEP;
    let demand = peak + peak / 10;
    let pool = K * demand + demand / 2;
    // A worker over this leaks: above a normal worker's peak, below the
    // leaking one's (which with K - 1 others still fits the pool).
    let process_rss = peak + STEP + STEP / 2;
    let leak_peak = peak + LEAK_STEPS * STEP;
    assert!(leak_peak + (K - 1) * peak <= pool);

    let host = tmp.path().join("host.toml");
    fs_err::write(
        &host,
        format!(
            "ram = \"auto\"\nvram = \"1GB\"\n\n[limits]\nram_percent = 90\nvram_percent = 90\n\n\
             [alerts]\nvram_percent = 99\nprocess_rss = \"{process_rss}B\"\ncheck_interval_secs = 60\n"
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_trader"))
        .current_dir(tmp.path())
        .args(["train", "--exec", "--json"])
        .args(["--workers", &MAX_WORKERS.to_string()])
        .args(["--trials", &TRIALS.to_string()])
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--host")
        .arg(&host)
        .args(["--ram-pool", &format!("{pool}B")])
        .args(["--worker-rss", &format!("{demand}B")])
        .arg("--")
        .arg("python3")
        .arg(script())
        .args(["--step-mb", &(STEP / MB).to_string()])
        .args(["--steps", &STEPS.to_string()])
        .args(["--step-secs", STEP_SECS, "--hold-secs", STEP_SECS])
        .args(["--leak-trial", &LEAK_TRIAL.to_string()])
        .args(["--leak-mb", &(LEAK_STEPS * STEP / MB).to_string()])
        .arg("--log")
        .arg(&log)
        .args(["--tag", &marker])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let mut run = Cleanup {
        child,
        marker: marker.clone(),
    };

    let started = Instant::now();
    let (mut most_alive, mut most_rss, mut samples) = (0, 0, 0);
    let status = loop {
        let (alive, rss) = sample(&marker);
        samples += usize::from(alive > 0);
        most_alive = most_alive.max(alive);
        most_rss = most_rss.max(rss);
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "trader train still running after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    let text = stderr(&o);
    assert!(o.status.success(), "{text}");
    let summary = json(&o);
    let governor = &summary["governor"];

    let events = events(&log);
    let at_once = most_at_once(&events);
    let leak_end = events
        .iter()
        .find(|e| !e.start && e.trial == LEAK_TRIAL)
        .copied();
    eprintln!(
        "k {K}; python {:.1} MB, peak {:.1} MB, demand {:.1} MB, pool {:.1} MB, process_rss {:.1} MB; \
         most alive {most_alive} (sampled, {samples} samples), {at_once} (log); most RSS together \
         {:.1} MB; {:.1} s; governor {governor}",
        base as f64 / 1e6,
        peak as f64 / 1e6,
        demand as f64 / 1e6,
        pool as f64 / 1e6,
        process_rss as f64 / 1e6,
        most_rss as f64 / 1e6,
        started.elapsed().as_secs_f64(),
    );

    // Every trial started once and ended once (none terminated, none run
    // twice), and the summary agrees.
    for trial in 0..TRIALS {
        let n = |start| {
            events
                .iter()
                .filter(|e| e.trial == trial && e.start == start)
                .count()
        };
        assert_eq!((n(true), n(false)), (1, 1), "trial {trial}: {events:?}");
    }
    assert_eq!(summary["done"], TRIALS, "{summary}");
    assert_eq!(summary["failed"].as_array().unwrap().len(), 0, "{summary}");
    assert_eq!(governor["terminations"], 0, "{summary}");

    // The script did what the sizes assume: normal workers under
    // process_rss, the leaking one over it.
    for e in events.iter().filter(|e| !e.start) {
        let over = e.peak > process_rss;
        assert_eq!(
            over,
            e.trial == LEAK_TRIAL,
            "{e:?}, process_rss {process_rss}"
        );
    }

    // Never more than K at once; memory (not the worker count) bounds
    // them, and the first K all fit.
    assert!(samples > 0, "no worker seen in /proc");
    assert!(most_alive as u64 <= K, "{most_alive} workers alive at once");
    assert!(at_once as u64 <= K, "{at_once} trials at once: {events:?}");
    assert_eq!(summary["max_concurrent_workers"], K, "{summary}");
    assert!(
        governor["refused"]["memory"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(
        governor["refused"].get("max_workers").is_none(),
        "{summary}"
    );

    // Their RSS together never over the pool by more than one step.
    assert!(
        most_rss <= pool + STEP,
        "{most_rss} bytes together, pool {pool}"
    );

    // The leak: one alert, a WARN naming its worker.
    assert_eq!(governor["alerts"]["worker_rss"], 1, "{summary}");
    let leaker = leak_end.unwrap().worker;
    let warned = text.lines().any(|l| {
        l.contains("WARN")
            && l.contains("kind=\"worker_rss\"")
            && l.contains(&format!("worker {leaker} holds"))
            && l.contains("memory leak")
    });
    assert!(warned, "no WARN of worker {leaker}'s leak: {text}");
}
