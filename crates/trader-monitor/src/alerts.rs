//! The resource check of `trader run`, every `[alerts] check_interval_secs`
//! of real time (host.toml): VRAM above `vram_percent` of the card, any
//! process on the machine above `process_rss`, and this trader's own RSS
//! more than 10 % above what the budget predicted (the budget's own slack). A crossing is one WARN line and one
//! increment of `trader_alerts_total{kind}`; while it lasts,
//! `trader_alert_active{kind}` is 1; when it ends, one INFO line.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trader_budget::{GpuProbe, probe_gpu};
use trader_config::AlertSettings;

use crate::Metrics;

/// One alert condition that holds now: a stable key and its message.
pub(crate) type Finding = (String, String);

/// A process's resident size.
pub(crate) struct ProcessRss {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) rss: u64,
}

/// What one check measured.
pub(crate) struct Sample {
    /// (used, total) bytes of GPU 0, when there is one.
    pub(crate) vram: Option<(u64, u64)>,
    pub(crate) processes: Vec<ProcessRss>,
    pub(crate) own_rss: u64,
}

/// The conditions that hold in `sample`.
pub(crate) fn findings(
    sample: &Sample,
    alerts: &AlertSettings,
    predicted_rss: u64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((used, total)) = sample.vram
        && total > 0
    {
        let pct = used as f64 / total as f64 * 100.0;
        if pct > alerts.vram_percent {
            out.push((
                "vram".to_owned(),
                format!(
                    "VRAM {pct:.1} % of the card, above {} %",
                    alerts.vram_percent
                ),
            ));
        }
    }
    for p in &sample.processes {
        if p.rss > alerts.process_rss.0 {
            out.push((
                format!("process_rss:{}", p.pid),
                format!(
                    "process {} ({}) holds {:.1} MB, above {}",
                    p.pid,
                    p.name,
                    p.rss as f64 / 1e6,
                    alerts.process_rss
                ),
            ));
        }
    }
    if sample.own_rss > predicted_rss + predicted_rss / 10 {
        out.push((
            "own_rss".to_owned(),
            format!(
                "this trader holds {:.1} MB, over 10 % above the budget's {:.1} MB",
                sample.own_rss as f64 / 1e6,
                predicted_rss as f64 / 1e6
            ),
        ));
    }
    out
}

/// The alert kind of a key (`process_rss:123` -> `process_rss`).
fn kind(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// Remembers which conditions hold, so each crossing is reported once.
#[derive(Default)]
pub(crate) struct Crossings {
    active: BTreeSet<String>,
}

impl Crossings {
    /// New crossings (to warn about) and conditions that ended.
    pub(crate) fn update(&mut self, now: &[Finding]) -> (Vec<Finding>, Vec<String>) {
        let keys: BTreeSet<String> = now.iter().map(|(k, _)| k.clone()).collect();
        let new = now
            .iter()
            .filter(|(k, _)| !self.active.contains(k))
            .cloned()
            .collect();
        let ended = self.active.difference(&keys).cloned().collect();
        self.active = keys;
        (new, ended)
    }

    /// Active conditions per kind.
    pub(crate) fn active_kinds(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for k in &self.active {
            *out.entry(kind(k).to_owned()).or_insert(0) += 1;
        }
        out
    }
}

fn status_rss(path: &std::path::Path) -> Option<u64> {
    trader_budget::process_memory(path).map(|m| m.rss)
}

/// Measures the machine now.
fn sample() -> Sample {
    let vram = match probe_gpu() {
        GpuProbe::Found { total, used, .. } => Some((used.0, total.0)),
        GpuProbe::NotFound { .. } => None,
    };
    let mut processes = Vec::new();
    if let Ok(dir) = fs_err::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(rss) = status_rss(&entry.path().join("status")) {
                let name = fs_err::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default();
                processes.push(ProcessRss { pid, name, rss });
            }
        }
    }
    Sample {
        vram,
        processes,
        own_rss: status_rss(std::path::Path::new("/proc/self/status")).unwrap_or(0),
    }
}

/// Runs the check every `alerts.check_interval_secs` (or `every`) until the
/// process ends.
pub fn spawn(
    alerts: AlertSettings,
    every: Duration,
    predicted_rss: u64,
    metrics: Option<Arc<Mutex<Metrics>>>,
) {
    tokio::spawn(async move {
        let mut crossings = Crossings::default();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let s = tokio::task::spawn_blocking(sample).await;
            let Ok(s) = s else { continue };
            let (new, ended) = crossings.update(&findings(&s, &alerts, predicted_rss));
            for (key, message) in &new {
                tracing::warn!(alert = kind(key), %message, "resource alert");
            }
            for key in &ended {
                tracing::info!(alert = kind(key), key = %key, "resource alert cleared");
            }
            if let Some(m) = &metrics
                && let Ok(mut m) = m.lock()
            {
                m.alerts(&new, &crossings.active_kinds());
                if let Some((used, _)) = s.vram {
                    m.set_vram_used(used);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use trader_core::ByteSize;

    fn settings() -> AlertSettings {
        AlertSettings {
            vram_percent: 85.0,
            process_rss: ByteSize(1_500_000_000),
            check_interval_secs: std::num::NonZeroU32::MIN,
            ram_percent: None,
            min_trials_per_hour: None,
        }
    }

    #[test]
    fn each_condition_is_found_and_reported_once_per_crossing() {
        let mut s = Sample {
            vram: Some((7_650_000_000, 8_200_000_000)),
            processes: vec![
                ProcessRss {
                    pid: 7,
                    name: "python3".to_owned(),
                    rss: 1_600_000_000,
                },
                ProcessRss {
                    pid: 8,
                    name: "bash".to_owned(),
                    rss: 4_000_000,
                },
            ],
            own_rss: 30_000_000,
        };
        let f = findings(&s, &settings(), 25_000_000);
        // 10 % over the prediction is tolerated.
        assert_eq!(
            findings(
                &Sample {
                    vram: None,
                    processes: Vec::new(),
                    own_rss: 27_400_000
                },
                &settings(),
                25_000_000
            )
            .len(),
            0
        );
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["vram", "process_rss:7", "own_rss"]);
        assert!(f[0].1.contains("93.3 %"), "{}", f[0].1);
        assert!(
            f[1].1.contains("python3") && f[1].1.contains("1600.0 MB"),
            "{}",
            f[1].1
        );
        let mut c = Crossings::default();
        assert_eq!(c.update(&f).0.len(), 3);
        // Still over: nothing new.
        assert!(c.update(&f).0.is_empty());
        assert_eq!(c.active_kinds()["process_rss"], 1);
        // VRAM back under 85 %: cleared once, the others stay.
        s.vram = Some((6_000_000_000, 8_200_000_000));
        let (new, ended) = c.update(&findings(&s, &settings(), 25_000_000));
        assert!(new.is_empty());
        assert_eq!(ended, ["vram"]);
        // And over again: a new crossing.
        s.vram = Some((8_000_000_000, 8_200_000_000));
        assert_eq!(c.update(&findings(&s, &settings(), 25_000_000)).0.len(), 1);
    }

    #[test]
    fn nothing_over_nothing_found() {
        let s = Sample {
            vram: None,
            processes: Vec::new(),
            own_rss: 1,
        };
        assert!(findings(&s, &settings(), 2).is_empty());
    }
}
