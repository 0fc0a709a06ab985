//! The ensemble crate's API tests, one test binary (one link instead of four):
//! - `catalog_errors`: what a badly laid out ensemble directory is called;
//! - `inference`: determinism, stacked vs sequential, dtypes, aggregation;
//! - `parity`: inference against PyTorch and numpy on the parity fixture;
//! - `projection`: the batched first layer against the plain forward pass.
//!
//! Inference tests are written once and run per device (candle's
//! `test_device!` pattern): [`per_device!`] turns `fn NAME(device)` into
//! `NAME::cpu` and, with the `cuda` feature, `NAME::cuda`, which says
//! "skipped" on stderr and passes when no CUDA device can be opened. With the
//! feature: `scripts/build_cuda.sh --test` (the toolkit from PyPI; a cuda test
//! binary links libcuda.so.1, so without a driver the script puts its stub
//! in the driver's place and every `::cuda` test says "skipped").

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// `per_device!(a, b)`: for each `fn a(device: ComputeDevice)` of the module,
/// a test module `a` with `cpu` and (feature `cuda`) `cuda` tests.
macro_rules! per_device {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn cpu() {
                super::$name(trader_core::ComputeDevice::Cpu);
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() {
                if crate::device::cuda_available() {
                    super::$name(trader_core::ComputeDevice::Cuda);
                }
            }
        }
    )+};
}

mod catalog_errors;
mod device;
mod inference;
mod parity;
mod projection;
