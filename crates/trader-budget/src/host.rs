//! The machine side of a budget: the host file (or its defaults), the
//! envelope it declares or leaves to probing, and its co-tenants, declared
//! or measured now.

use std::path::Path;

use trader_config::{AlertSettings, HostConfig, MemorySpec};

use crate::{
    BudgetError, Envelope, GpuProbe, Limit, Tenant, WORKER_TENANT, probe_gpu, probe_memory,
    probe_train_workers,
};

/// The host file read when none is named: `CONFIG_DIR/host.toml`.
pub const HOST_FILE: &str = "host.toml";
/// Allowed percent of the machine's RAM without a host file.
pub const DEFAULT_RAM_PERCENT: f64 = 90.0;
/// Allowed percent of the GPU's memory without a host file.
pub const DEFAULT_VRAM_PERCENT: f64 = 85.0;

/// Reads the host file: `host` when given, else `CONFIG_DIR/host.toml` when
/// it exists, else none (this machine probed, no co-tenants).
///
/// # Errors
/// [`BudgetError::Config`] when the file cannot be read or is invalid.
pub fn read_host_file(
    host: Option<&Path>,
    config_dir: &Path,
) -> Result<Option<HostConfig>, BudgetError> {
    let default = config_dir.join(HOST_FILE);
    let path = host.or_else(|| default.is_file().then_some(default.as_path()));
    Ok(path.map(HostConfig::from_file).transpose()?)
}

/// How the limits name the host file in their `source`.
fn host_name(host: Option<&HostConfig>) -> String {
    host.map_or_else(
        || "(no host file)".to_owned(),
        |h| h.path.display().to_string(),
    )
}

/// The RAM limit: the host file's declared size, or this machine probed
/// under `root` (`/` on a real machine: the cgroup limit when lower than
/// `MemTotal`), times the host file's `ram_percent` ([`DEFAULT_RAM_PERCENT`]
/// without a host file).
///
/// # Errors
/// The probe's error when RAM is `auto` and `/proc/meminfo` cannot be read.
pub fn ram_limit(host: Option<&HostConfig>, root: &Path) -> Result<Limit, BudgetError> {
    let (spec, percent) = host.map_or((MemorySpec::Auto, DEFAULT_RAM_PERCENT), |h| {
        (h.ram, h.limits.ram_percent)
    });
    Ok(match spec {
        MemorySpec::Declared(size) => Limit {
            machine_total: size.0,
            source: format!("declared in {}", host_name(host)),
            allowed_percent: percent,
        },
        MemorySpec::Auto => {
            let probe =
                probe_memory(root).map_err(|e| e.during("probing this machine's memory"))?;
            Limit {
                machine_total: probe.total.0,
                source: probe.source,
                allowed_percent: percent,
            }
        }
    })
}

/// Whether the VRAM limit needs NVML: the host file leaves it `auto` (or
/// there is no host file).
#[must_use]
pub fn vram_needs_probe(host: Option<&HostConfig>) -> bool {
    host.is_none_or(|h| h.vram == MemorySpec::Auto)
}

/// The VRAM limit: the host file's declared size, or GPU 0 as `gpu` found it,
/// times `vram_percent` ([`DEFAULT_VRAM_PERCENT`] without a host file).
/// Unknown (None, with the reason) when VRAM is `auto` and no GPU was found
/// or none was probed.
#[must_use]
pub fn vram_limit(
    host: Option<&HostConfig>,
    gpu: Option<&GpuProbe>,
) -> (Option<Limit>, Option<String>) {
    let (spec, percent) = host.map_or((MemorySpec::Auto, DEFAULT_VRAM_PERCENT), |h| {
        (h.vram, h.limits.vram_percent)
    });
    match (spec, gpu) {
        (MemorySpec::Declared(size), _) => (
            Some(Limit {
                machine_total: size.0,
                source: format!("declared in {}", host_name(host)),
                allowed_percent: percent,
            }),
            None,
        ),
        (MemorySpec::Auto, Some(GpuProbe::Found { name, total, .. })) => (
            Some(Limit {
                machine_total: total.0,
                source: format!("NVML: {name}"),
                allowed_percent: percent,
            }),
            None,
        ),
        (MemorySpec::Auto, Some(GpuProbe::NotFound { reason })) => (None, Some(reason.clone())),
        (MemorySpec::Auto, None) => (None, Some("not probed".to_owned())),
    }
}

/// The host file's `[[tenants]]` (none without a host file).
#[must_use]
pub fn declared_tenants(host: Option<&HostConfig>) -> Vec<Tenant> {
    host.map(|h| {
        h.tenants
            .iter()
            .map(|t| Tenant {
                name: t.name.clone(),
                count: t.count,
                ram_each: t.ram.map_or(0, |s| s.0),
                vram_each: t.vram.map_or(0, |s| s.0),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// `--measure`: what is in use under `root` now replaces the declared
/// co-tenants. Running `trader train` workers are a tenant of their own;
/// the rest of the RAM in use (MemTotal - MemAvailable) is one tenant, with
/// the GPU's used VRAM when `gpu` found one. Without a GPU, the declared
/// co-tenants' VRAM stays (with a warning pushed on `warnings`).
///
/// # Errors
/// The probe's error when `/proc/meminfo` cannot be read.
pub fn measured_tenants(
    declared: &[Tenant],
    gpu: Option<&GpuProbe>,
    root: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Tenant>, BudgetError> {
    let probe = probe_memory(root).map_err(|e| e.during("measuring memory in use"))?;
    let ram_used = probe.mem_total.0.saturating_sub(probe.available.0);
    let measured_vram = match gpu {
        Some(GpuProbe::Found { used, .. }) => Some(used.0),
        _ => None,
    };
    let workers = probe_train_workers(root);
    let worker_ram: u64 = workers.iter().map(|w| w.rss.0).sum();
    let mut measured = Vec::new();
    if !workers.is_empty() {
        measured.push(Tenant {
            name: "trader train workers (measured live)".to_owned(),
            count: u32::try_from(workers.len()).unwrap_or(u32::MAX),
            ram_each: worker_ram / workers.len() as u64,
            vram_each: 0,
        });
    }
    measured.push(Tenant {
        name: IN_USE_NOW_TENANT.to_owned(),
        count: 1,
        ram_each: ram_used.saturating_sub(worker_ram),
        vram_each: measured_vram.unwrap_or(0),
    });
    if measured_vram.is_none() {
        warnings.push("--measure: no GPU found, VRAM co-tenants as declared".to_owned());
        measured.extend(declared.iter().filter(|t| t.vram_each > 0).map(|t| Tenant {
            ram_each: 0,
            ..t.clone()
        }));
    }
    Ok(measured)
}

/// The measured co-tenant holding the RAM in use besides training workers.
pub const IN_USE_NOW_TENANT: &str = "in use now (measured)";

/// The host as it is now, for a process already running: [`resolve_host`]
/// with the co-tenants measured, less `own_rss` (this process, counted by
/// its own budget) from the RAM in use.
///
/// # Errors
/// As [`resolve_host`].
pub fn resolve_host_besides(
    host: Option<&Path>,
    config_dir: &Path,
    own_rss: u64,
) -> Result<HostBudget, BudgetError> {
    let mut budget = resolve_host(host, config_dir, true)?;
    for t in &mut budget.tenants {
        if t.name == IN_USE_NOW_TENANT {
            t.ram_each = t.ram_each.saturating_sub(own_rss);
        }
    }
    Ok(budget)
}

/// The machine side of a budget: its envelope, its co-tenants, the host
/// file's alerts, and what was assumed (warnings for the report).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBudget {
    pub envelope: Envelope,
    pub tenants: Vec<Tenant>,
    pub warnings: Vec<String>,
    /// The host file's `[alerts]`, when there is a host file.
    pub alerts: Option<AlertSettings>,
}

/// Reads the host file (`host`, else `CONFIG_DIR/host.toml`, else this
/// machine probed with no co-tenants and limits of [`DEFAULT_RAM_PERCENT`] /
/// [`DEFAULT_VRAM_PERCENT`]), probes what it leaves to probing (RAM, NVML)
/// and, with `measure`, replaces its co-tenants by what is in use now.
///
/// # Errors
/// An unreadable or invalid host file, or `/proc/meminfo` unreadable when
/// RAM is probed or measured.
pub fn resolve_host(
    host: Option<&Path>,
    config_dir: &Path,
    measure: bool,
) -> Result<HostBudget, BudgetError> {
    resolve_host_at(host, config_dir, measure, Path::new("/"), probe_gpu)
}

/// [`resolve_host`] on the machine under `root`, with `gpu` as NVML.
pub(crate) fn resolve_host_at(
    host: Option<&Path>,
    config_dir: &Path,
    measure: bool,
    root: &Path,
    gpu: impl FnOnce() -> GpuProbe,
) -> Result<HostBudget, BudgetError> {
    let host = read_host_file(host, config_dir)?;
    let host = host.as_ref();
    let mut warnings = Vec::new();
    if host.is_none() {
        warnings.push(format!(
            "no host file ({}/{HOST_FILE} missing, no --host): probing this machine, no co-tenants, limits RAM {DEFAULT_RAM_PERCENT} % / VRAM {DEFAULT_VRAM_PERCENT} %",
            config_dir.display()
        ));
    }
    let ram = ram_limit(host, root)?;
    let gpu = (vram_needs_probe(host) || measure).then(gpu);
    let (vram, vram_unknown_reason) = vram_limit(host, gpu.as_ref());
    let declared = declared_tenants(host);
    let tenants = if measure {
        measured_tenants(&declared, gpu.as_ref(), root, &mut warnings)?
    } else {
        let running = probe_train_workers(root);
        if !running.is_empty() {
            let each = running.iter().map(|w| w.rss.0).sum::<u64>() / running.len() as u64;
            warnings.push(format!(
                "{} trader train worker(s) running now ({:.1} MB each); the host file's {WORKER_TENANT:?} tenant is what this budget counts (--measure counts them live)",
                running.len(),
                each as f64 / 1e6,
            ));
        }
        declared
    };
    Ok(HostBudget {
        envelope: Envelope {
            ram,
            vram,
            vram_unknown_reason,
        },
        tenants,
        warnings,
        alerts: host.map(|h| h.alerts),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const MEMINFO: &str =
        "MemTotal:       25165824 kB\nMemFree:  100 kB\nMemAvailable:   20971520 kB\n";

    /// A fake machine: `/proc/meminfo` and one `trader train` worker of
    /// 1,000,000 kB... of 100 MB resident.
    fn machine(with_worker: bool) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = vec![("proc/meminfo", MEMINFO.to_owned())];
        if with_worker {
            files.push((
                "proc/4242/cmdline",
                concat!("trader\0train\0--worker-trial\0", "3\0").to_owned(),
            ));
            files.push((
                "proc/4242/status",
                "VmHWM:\t200000 kB\nVmRSS:\t100000 kB\n".to_owned(),
            ));
        }
        for (path, text) in files {
            let p = tmp.path().join(path);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, text).unwrap();
        }
        tmp
    }

    const HOST: &str = r#"
ram = "16GB"
vram = "auto"

[limits]
ram_percent = 80
vram_percent = 70

[alerts]
vram_percent = 85
process_rss = "1.5GB"
check_interval_secs = 300

[[tenants]]
name = "training-worker"
count = 3
ram = "1GB"
vram = "500MB"

[[tenants]]
name = "monitoring"
count = 1
ram = "0.5GB"
"#;

    fn host_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("my-host.toml");
        fs_err::write(&path, text).unwrap();
        path
    }

    fn gpu() -> GpuProbe {
        GpuProbe::Found {
            name: "Test GPU".to_owned(),
            total: trader_core::ByteSize(8_000_000_000),
            used: trader_core::ByteSize(1_000_000_000),
        }
    }

    #[test]
    fn without_a_host_file_this_machine_is_probed_with_the_default_limits_and_no_co_tenants() {
        let root = machine(false);
        let config_dir = tempfile::tempdir().unwrap();
        let host = resolve_host_at(None, config_dir.path(), false, root.path(), || {
            GpuProbe::NotFound {
                reason: "no GPU found (test)".to_owned(),
            }
        })
        .unwrap();
        assert_eq!(host.envelope.ram.machine_total, 25_165_824 * 1024);
        assert!((host.envelope.ram.allowed_percent - DEFAULT_RAM_PERCENT).abs() < f64::EPSILON);
        assert!(host.envelope.vram.is_none());
        assert_eq!(
            host.envelope.vram_unknown_reason.as_deref(),
            Some("no GPU found (test)")
        );
        assert!(host.tenants.is_empty() && host.alerts.is_none());
        assert!(
            host.warnings[0].contains("limits RAM 90 % / VRAM 85 %"),
            "{:?}",
            host.warnings
        );
    }

    #[test]
    fn a_found_gpu_gets_the_default_vram_percent_without_a_host_file() {
        let (vram, reason) = vram_limit(None, Some(&gpu()));
        assert_eq!(
            vram,
            Some(Limit {
                machine_total: 8_000_000_000,
                source: "NVML: Test GPU".to_owned(),
                allowed_percent: DEFAULT_VRAM_PERCENT,
            })
        );
        assert!(reason.is_none());
        assert_eq!(vram_limit(None, None).1.as_deref(), Some("not probed"));
    }

    #[test]
    fn the_host_file_declares_ram_percents_and_co_tenants_and_warns_of_running_workers() {
        let root = machine(true);
        let dir = tempfile::tempdir().unwrap();
        let path = host_file(dir.path(), HOST);
        let host = resolve_host_at(Some(&path), dir.path(), false, root.path(), gpu).unwrap();
        assert_eq!(
            host.envelope.ram,
            Limit {
                machine_total: 16_000_000_000,
                source: format!("declared in {}", path.display()),
                allowed_percent: 80.0,
            }
        );
        assert_eq!(
            host.envelope.vram,
            Some(Limit {
                machine_total: 8_000_000_000,
                source: "NVML: Test GPU".to_owned(),
                allowed_percent: 70.0,
            })
        );
        assert_eq!(
            host.tenants,
            vec![
                Tenant {
                    name: WORKER_TENANT.to_owned(),
                    count: 3,
                    ram_each: 1_000_000_000,
                    vram_each: 500_000_000,
                },
                Tenant {
                    name: "monitoring".to_owned(),
                    count: 1,
                    ram_each: 500_000_000,
                    vram_each: 0,
                },
            ]
        );
        assert!(host.alerts.is_some());
        assert_eq!(host.warnings.len(), 1, "{:?}", host.warnings);
        assert!(
            host.warnings[0].starts_with("1 trader train worker(s) running now (102.4 MB each)")
        );
    }

    #[test]
    fn a_declared_vram_is_not_probed() {
        let dir = tempfile::tempdir().unwrap();
        let path = host_file(
            dir.path(),
            &HOST.replace(r#"vram = "auto""#, r#"vram = "4GB""#),
        );
        let root = machine(false);
        let host = resolve_host_at(Some(&path), dir.path(), false, root.path(), || {
            panic!("NVML asked for a declared VRAM")
        })
        .unwrap();
        assert_eq!(host.envelope.vram.unwrap().machine_total, 4_000_000_000);
    }

    #[test]
    fn measure_replaces_the_co_tenants_by_what_is_in_use_with_workers_apart() {
        let root = machine(true);
        let dir = tempfile::tempdir().unwrap();
        let path = host_file(dir.path(), HOST);
        let host = resolve_host_at(Some(&path), dir.path(), true, root.path(), gpu).unwrap();
        let used = (25_165_824 - 20_971_520) * 1024;
        assert_eq!(
            host.tenants,
            vec![
                Tenant {
                    name: "trader train workers (measured live)".to_owned(),
                    count: 1,
                    ram_each: 102_400_000,
                    vram_each: 0,
                },
                Tenant {
                    name: "in use now (measured)".to_owned(),
                    count: 1,
                    ram_each: used - 102_400_000,
                    vram_each: 1_000_000_000,
                },
            ]
        );
        assert!(host.warnings.is_empty(), "{:?}", host.warnings);
    }

    #[test]
    fn measure_without_a_gpu_keeps_the_declared_vram_co_tenants() {
        let root = machine(false);
        let declared = declared_tenants(Some(
            &HostConfig::from_file(&host_file(root.path(), HOST)).unwrap(),
        ));
        let mut warnings = Vec::new();
        let no_gpu = GpuProbe::NotFound {
            reason: "none".to_owned(),
        };
        let tenants =
            measured_tenants(&declared, Some(&no_gpu), root.path(), &mut warnings).unwrap();
        assert_eq!(tenants.len(), 2, "{tenants:?}");
        assert_eq!(tenants[0].vram_each, 0);
        assert_eq!(
            (
                tenants[1].name.as_str(),
                tenants[1].ram_each,
                tenants[1].vram_each
            ),
            (WORKER_TENANT, 0, 500_000_000)
        );
        assert!(warnings[0].contains("no GPU found"));
    }

    #[test]
    fn an_unreadable_meminfo_names_what_was_being_probed() {
        let empty = tempfile::tempdir().unwrap();
        let err = ram_limit(None, empty.path()).unwrap_err();
        assert_eq!(err.to_string(), "probing this machine's memory");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn an_invalid_host_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = host_file(dir.path(), "ram = 12\n");
        let err = read_host_file(Some(&path), dir.path()).unwrap_err();
        assert!(matches!(err, BudgetError::Config(_)), "{err:?}");
        assert!(read_host_file(None, dir.path()).unwrap().is_none());
    }
}
