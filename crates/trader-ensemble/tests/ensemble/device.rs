//! The devices a per-device test runs on.

/// Whether a CUDA device opens here; if not, says why the test is skipped.
#[cfg(feature = "cuda")]
pub fn cuda_available() -> bool {
    match trader_ensemble::candle_device(trader_core::ComputeDevice::Cuda) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            false
        }
    }
}
