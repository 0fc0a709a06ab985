//! The devices a per-device test runs on.

/// Whether a CUDA device opens here; if not, says why the test is skipped.
#[cfg(feature = "cuda")]
pub(crate) fn cuda_available() -> bool {
    match trader_ensemble::candle_device(trader_core::ComputeDevice::Cuda) {
        Ok(_) => true,
        Err(e) => {
            // candle's error carries a backtrace: its first line says why
            let why = e.to_string();
            eprintln!(
                "skipped: no CUDA device ({})",
                why.lines().next().unwrap_or_default()
            );
            false
        }
    }
}
