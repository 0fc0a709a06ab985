//! The worker gate of `trader train`: how many training workers of a given
//! predicted RSS fit in the allowed RAM next to the other co-tenants.

use std::path::Path;

use serde::Serialize;

use crate::{
    BudgetError, Limit, Tenant, WORKER_TENANT, declared_tenants, ram_limit, read_host_file,
};

/// Room for training workers in RAM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRoom {
    /// The RAM limit (machine total, its source, the allowed percent).
    pub limit: Limit,
    /// Bytes all processes together may use.
    pub allowed: u64,
    /// RAM of the co-tenants other than [`WORKER_TENANT`].
    pub others: u64,
    /// `allowed - others` (0 when the others alone overrun it).
    pub room: u64,
    /// Predicted RSS of one worker.
    pub worker_bytes: u64,
    /// Workers that fit in `room`.
    pub fit: u64,
}

impl WorkerRoom {
    /// Whether `workers` workers fit.
    #[must_use]
    pub fn fits(&self, workers: u32) -> bool {
        u64::from(workers) <= self.fit
    }
}

/// The room for workers of `worker_bytes` each under `limit`, next to the
/// `tenants` other than [`WORKER_TENANT`] (the workers replace that one).
#[must_use]
pub fn worker_room(limit: &Limit, tenants: &[Tenant], worker_bytes: u64) -> WorkerRoom {
    let allowed = limit.allowed();
    let others: u64 = tenants
        .iter()
        .filter(|t| t.name != WORKER_TENANT)
        .map(|t| u64::from(t.count).saturating_mul(t.ram_each))
        .sum();
    let room = allowed.saturating_sub(others);
    WorkerRoom {
        limit: limit.clone(),
        allowed,
        others,
        room,
        worker_bytes,
        fit: room / worker_bytes.max(1),
    }
}

/// [`worker_room`] on this machine: the host file (`host`, else
/// `CONFIG_DIR/host.toml`, else this machine probed with no co-tenants; see
/// [`crate::resolve_host`]), its RAM limit (declared or probed) and its
/// declared co-tenants.
///
/// # Errors
/// An unreadable or invalid host file, or `/proc/meminfo` unreadable when
/// RAM is probed.
pub fn resolve_worker_room(
    host: Option<&Path>,
    config_dir: &Path,
    worker_bytes: u64,
) -> Result<WorkerRoom, BudgetError> {
    let host = read_host_file(host, config_dir)?;
    let limit = ram_limit(host.as_ref(), Path::new("/"))?;
    Ok(worker_room(
        &limit,
        &declared_tenants(host.as_ref()),
        worker_bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, count: u32, ram_each: u64) -> Tenant {
        Tenant {
            name: name.to_owned(),
            count,
            ram_each,
            vram_each: 7,
        }
    }

    #[test]
    fn workers_fit_in_the_allowed_ram_less_the_other_co_tenants() {
        let limit = Limit {
            machine_total: 10_000,
            source: "declared".to_owned(),
            allowed_percent: 90.0,
        };
        let tenants = [
            tenant(WORKER_TENANT, 9, 1_000_000),
            tenant("monitoring", 2, 1_000),
        ];
        let room = worker_room(&limit, &tenants, 3_000);
        assert_eq!(
            (room.allowed, room.others, room.room),
            (9_000, 2_000, 7_000)
        );
        assert_eq!(room.fit, 2);
        assert!(room.fits(2) && !room.fits(3));
    }

    #[test]
    fn others_over_the_limit_leave_no_room_and_zero_bytes_do_not_divide_by_zero() {
        let limit = Limit {
            machine_total: 1_000,
            source: "declared".to_owned(),
            allowed_percent: 50.0,
        };
        let room = worker_room(&limit, &[tenant("monitoring", 1, 600)], 100);
        assert_eq!((room.room, room.fit), (0, 0));
        assert!(room.fits(0) && !room.fits(1));
        let free = worker_room(&limit, &[], 0);
        assert_eq!(free.fit, 500);
    }

    #[test]
    fn the_host_file_gives_the_limit_and_the_other_co_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        fs_err::write(
            &path,
            r#"
ram = "10GB"
vram = "auto"

[limits]
ram_percent = 50
vram_percent = 85

[alerts]
vram_percent = 85
process_rss = "1.5GB"
check_interval_secs = 300

[[tenants]]
name = "training-worker"
count = 9
ram = "1GB"

[[tenants]]
name = "monitoring"
count = 1
ram = "1GB"
"#,
        )
        .unwrap();
        // Found as CONFIG_DIR/host.toml.
        let room = resolve_worker_room(None, dir.path(), 1_000_000_000).unwrap();
        assert_eq!(room.limit.machine_total, 10_000_000_000);
        assert_eq!(room.limit.source, format!("declared in {}", path.display()));
        assert_eq!(
            (room.allowed, room.others, room.fit),
            (5_000_000_000, 1_000_000_000, 4)
        );
    }
}
