//! RAM envelope probes: cgroup v2, cgroup v1, `/proc/meminfo`.
//!
//! Every probe takes a root directory so tests can point it at a fake tree.

use std::path::Path;

use trader_core::ByteSize;

use crate::BudgetError;

/// cgroup v1 reports "no limit" as a huge number near `i64::MAX` rounded to pages.
const CGROUP_V1_UNLIMITED: u64 = 1 << 62;

/// What the machine says about its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryProbe {
    /// The memory this process may use: the cgroup limit if lower than MemTotal.
    pub total: ByteSize,
    /// Where `total` came from, for the report.
    pub source: String,
    /// `MemAvailable`, for `--measure`.
    pub available: ByteSize,
    /// `MemTotal`.
    pub mem_total: ByteSize,
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs_err::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn meminfo_field(text: &str, field: &str, path: &Path) -> Result<ByteSize, BudgetError> {
    let line = text
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .ok_or_else(|| BudgetError::Parse {
            path: path.to_path_buf(),
            what: "field",
            value: field.to_owned(),
        })?;
    let value = line[field.len() + 1..].trim();
    let kib: u64 = value
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| BudgetError::Parse {
            path: path.to_path_buf(),
            what: "kB value",
            value: value.to_owned(),
        })?;
    Ok(ByteSize(kib * 1024))
}

/// Probes the memory envelope under `root` (`/` on a real machine).
///
/// # Errors
/// `/proc/meminfo` missing or unparsable.
pub fn probe_memory(root: &Path) -> Result<MemoryProbe, BudgetError> {
    let meminfo_path = root.join("proc/meminfo");
    let meminfo = fs_err::read_to_string(&meminfo_path).map_err(|source| BudgetError::Read {
        path: meminfo_path.clone(),
        source,
    })?;
    let mem_total = meminfo_field(&meminfo, "MemTotal", &meminfo_path)?;
    let available = meminfo_field(&meminfo, "MemAvailable", &meminfo_path)?;

    let v2 = root.join("sys/fs/cgroup/memory.max");
    let v1 = root.join("sys/fs/cgroup/memory/memory.limit_in_bytes");
    let (limit, cgroup_note) = if let Some(text) = read_trimmed(&v2) {
        if text == "max" {
            (None, "cgroup v2 memory.max = max".to_owned())
        } else {
            let bytes = text.parse::<u64>().map_err(|_| BudgetError::Parse {
                path: v2.clone(),
                what: "byte count",
                value: text.clone(),
            })?;
            (
                Some(bytes),
                format!("cgroup v2 memory.max = {}", ByteSize(bytes)),
            )
        }
    } else if let Some(text) = read_trimmed(&v1) {
        let bytes = text.parse::<u64>().map_err(|_| BudgetError::Parse {
            path: v1.clone(),
            what: "byte count",
            value: text.clone(),
        })?;
        if bytes >= CGROUP_V1_UNLIMITED {
            (None, "cgroup v1 memory.limit_in_bytes unlimited".to_owned())
        } else {
            (
                Some(bytes),
                format!("cgroup v1 memory.limit_in_bytes = {}", ByteSize(bytes)),
            )
        }
    } else {
        (None, "no cgroup memory limit found".to_owned())
    };
    let (total, source) = match limit {
        Some(bytes) if bytes < mem_total.0 => (ByteSize(bytes), cgroup_note),
        _ => (mem_total, format!("/proc/meminfo MemTotal ({cgroup_note})")),
    };
    Ok(MemoryProbe {
        total,
        source,
        available,
        mem_total,
    })
}

/// A process's resident set now (`VmRSS`) and at its peak (`VmHWM`), bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    pub rss: u64,
    pub peak: u64,
}

/// The memory of the process whose status file is `status_path`
/// (`/proc/PID/status`); None when it is gone or unreadable (a kernel
/// thread has no `VmRSS`). The one reader of `/proc/*/status` memory lines.
#[must_use]
pub fn process_memory(status_path: &Path) -> Option<ProcessMemory> {
    let status = fs_err::read_to_string(status_path).ok()?;
    let rss = meminfo_field(&status, "VmRSS", status_path).ok()?.0;
    let peak = meminfo_field(&status, "VmHWM", status_path).map_or(rss, |b| b.0);
    Some(ProcessMemory { rss, peak })
}

/// This process's memory (zeros where `/proc` is not there).
#[must_use]
pub fn own_memory() -> ProcessMemory {
    process_memory(Path::new("/proc/self/status")).unwrap_or_default()
}

/// The argument that marks a `trader train` worker process.
pub const TRAIN_WORKER_ARG: &str = "--worker-trial";

/// One running `trader train` worker, as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningWorker {
    pub pid: u32,
    /// Resident set now (`VmRSS`).
    pub rss: ByteSize,
}

/// A `trader train` process, as `/proc` shows it: a command line with a
/// `train` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainProcess {
    pub pid: u32,
    /// Its command line (lossy UTF-8).
    pub args: Vec<String>,
    /// A worker ([`TRAIN_WORKER_ARG`]), not the coordinator.
    pub worker: bool,
}

/// The `trader train` processes running under `root` (`/` on a real
/// machine), workers and coordinators, by pid: the one scan of `/proc` for
/// them. Processes that vanish while being read are skipped.
#[must_use]
pub fn probe_train_processes(root: &Path) -> Vec<TrainProcess> {
    let Ok(entries) = fs_err::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs_err::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a == "train") {
            continue;
        }
        let worker = args.iter().any(|a| a == TRAIN_WORKER_ARG);
        found.push(TrainProcess { pid, args, worker });
    }
    found.sort_by_key(|p| p.pid);
    found
}

/// The `trader train` worker processes running under `root` (`/` on a real
/// machine): command lines with `train` and [`TRAIN_WORKER_ARG`]
/// ([`probe_train_processes`]), with their RSS.
#[must_use]
pub fn probe_train_workers(root: &Path) -> Vec<RunningWorker> {
    probe_train_processes(root)
        .into_iter()
        .filter(|p| p.worker)
        .filter_map(|p| {
            let memory = process_memory(&root.join(format!("proc/{}/status", p.pid)))?;
            Some(RunningWorker {
                pid: p.pid,
                rss: ByteSize(memory.rss),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str =
        "MemTotal:       25165824 kB\nMemFree:  100 kB\nMemAvailable:   20971520 kB\n";

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = tmp.path().join(path);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, text).unwrap();
        }
        tmp
    }

    #[test]
    fn cgroup_v2_limit_below_memtotal_wins() {
        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory.max", "4294967296\n"),
        ]);
        let p = probe_memory(t.path()).unwrap();
        assert_eq!(p.total, ByteSize(4 << 30));
        assert!(p.source.contains("cgroup v2"), "{}", p.source);
        assert_eq!(p.available, ByteSize(20 << 30));
    }

    #[test]
    fn cgroup_v1_limit_is_read_and_unlimited_falls_back_to_memtotal() {
        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory/memory.limit_in_bytes", "2147483648\n"),
        ]);
        let p = probe_memory(t.path()).unwrap();
        assert_eq!(p.total, ByteSize(2 << 30));
        assert!(p.source.contains("cgroup v1"), "{}", p.source);

        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        let p = probe_memory(t.path()).unwrap();
        assert_eq!(p.total, ByteSize(24 << 30));
        assert!(
            p.source.contains("MemTotal") && p.source.contains("unlimited"),
            "{}",
            p.source
        );
    }

    #[test]
    fn v2_max_means_memtotal() {
        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory.max", "max"),
        ]);
        let p = probe_memory(t.path()).unwrap();
        assert_eq!(p.total, ByteSize(24 << 30));
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory.max", "lots"),
        ]);
        let err = probe_memory(t.path()).unwrap_err().to_string();
        assert!(err.contains("memory.max") && err.contains("lots"), "{err}");
        let t = tree(&[("proc/meminfo", "MemTotal: x kB\n")]);
        assert!(probe_memory(t.path()).is_err());
    }

    #[test]
    fn this_machine_probes() {
        let p = probe_memory(Path::new("/")).unwrap();
        assert!(p.total.0 > 0 && p.available <= p.mem_total);
    }

    #[test]
    fn train_workers_are_found_by_their_command_line() {
        let t = tree(&[
            ("proc/meminfo", MEMINFO),
            (
                "proc/10/cmdline",
                "/bin/trader\0train\0--out\0m\0--worker-trial\x003\0",
            ),
            ("proc/10/status", "Name: trader\nVmRSS:     35000 kB\n"),
            ("proc/11/cmdline", "/bin/trader\0train\0--out\0m\0"),
            ("proc/11/status", "Name: trader\nVmRSS:     9000 kB\n"),
            ("proc/12/cmdline", "/bin/trader\0run\0--profile\0lean\0"),
            ("proc/12/status", "Name: trader\nVmRSS:     24000 kB\n"),
            (
                "proc/13/cmdline",
                "/bin/trader\0train\0--worker-trial\x007\0",
            ),
            ("proc/13/status", "Name: trader\nVmRSS:     31000 kB\n"),
            ("proc/self/cmdline", "x"),
        ]);
        let workers = probe_train_workers(t.path());
        assert_eq!(
            workers,
            vec![
                RunningWorker {
                    pid: 10,
                    rss: ByteSize(35_000 * 1024)
                },
                RunningWorker {
                    pid: 13,
                    rss: ByteSize(31_000 * 1024)
                },
            ]
        );
    }

    #[test]
    fn process_memory_reads_rss_and_peak_and_a_gone_process_is_none() {
        let t = tree(&[
            (
                "proc/7/status",
                "Name: x\nVmHWM:     2048 kB\nVmRSS:     1024 kB\n",
            ),
            ("proc/8/status", "Name: kthreadd\n"),
        ]);
        let m = process_memory(&t.path().join("proc/7/status")).unwrap();
        assert_eq!((m.rss, m.peak), (1024 * 1024, 2048 * 1024));
        assert_eq!(process_memory(&t.path().join("proc/8/status")), None);
        assert_eq!(process_memory(&t.path().join("proc/9/status")), None);
    }
}
