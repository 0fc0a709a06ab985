//! VRAM probe through NVML, loaded at run time: a machine without a GPU or a
//! driver gets "no GPU found" with the reason, never a crash.

use trader_core::ByteSize;

/// What NVML says about GPU 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuProbe {
    Found {
        name: String,
        total: ByteSize,
        used: ByteSize,
    },
    NotFound {
        reason: String,
    },
}

/// Asks NVML for GPU 0's memory.
#[must_use]
pub fn probe_gpu() -> GpuProbe {
    let not_found = |what: &str, e: &dyn std::fmt::Display| GpuProbe::NotFound {
        reason: format!("no GPU found ({what}: {e})"),
    };
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => return not_found("NVML unavailable", &e),
    };
    let device = match nvml.device_by_index(0) {
        Ok(d) => d,
        Err(e) => return not_found("no device 0", &e),
    };
    match device.memory_info() {
        Ok(info) => GpuProbe::Found {
            name: device.name().unwrap_or_else(|_| "GPU 0".to_owned()),
            total: ByteSize(info.total),
            used: ByteSize(info.used),
        },
        Err(e) => not_found("memory info", &e),
    }
}
