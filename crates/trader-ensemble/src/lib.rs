//! Ensemble directories of small MLP trading policies (DESIGN.md, "Ensemble
//! directory"): the manifests (`ensemble_params.json`, `params.json`), the
//! safetensors headers, the ranking by score, and this crate's own memory
//! demand, which the budgeter adds up before anything is loaded.
//!
//! What it does not do: decide whether the demand fits (trader-budget), or
//! compute features (trader-core).
//!
//! Features: `cuda` (off by default; needs nvcc to build, and the binary needs a
//! CUDA driver to start) runs inference on the GPU.
//!
//! Tests: `cargo test -p trader-ensemble`.

mod catalog;
mod demand;
mod error;
mod header;
mod manifest;

pub use catalog::{EnsembleCatalog, MemberSummary};
pub use demand::{ACTIVATION_BATCH_LIVE, ensemble_demand};
pub use error::EnsembleError;
pub use header::{SafetensorsHeader, TensorEntry};
pub use manifest::{Activation, EnsembleParams, LayerSpec, MemberParams, MemberRef, Normalize};
