//! Ensemble directories of small MLP trading policies (DESIGN.md, "Ensemble
//! directory"): the manifests (`ensemble_params.json`, `params.json`), the
//! safetensors headers, the ranking by score, loading the best `top_n` members
//! with candle (checked: tensors chain, input size, finite values; converted
//! to f32/f16/bf16), the forward pass (sequential or stacked by architecture),
//! aggregation (mean, median, vote), and this crate's own memory demand, which
//! the budgeter adds up before anything is loaded. The logic of `trader
//! ensemble inspect | infer | bench` lives here too: the inspection rows
//! (`inspect.rs`), the state vector of `infer` (`state.rs`) and the timed
//! decisions of `bench` (`bench.rs`); the CLI only parses flags and prints.
//!
//! Members load one at a time and each file buffer is dropped before the next
//! (candle copies the weights out of it), so loading costs at most one member
//! file on top of the weights. Inference is deterministic on the CPU: the same
//! state gives the same actions bit for bit. candle's matmul threads follow
//! `RAYON_NUM_THREADS`, which the CLI sets from the profile's `threads`.
//!
//! What it does not do: decide whether the demand fits (trader-budget), or
//! compute features (trader-core).
//!
//! Features: `cuda` (off by default; needs nvcc to build, and the binary needs a
//! CUDA driver to start) runs inference on the GPU.
//!
//! Tests: `cargo test -p trader-ensemble`.

mod aggregate;
mod bench;
mod catalog;
mod demand;
mod ensemble;
mod error;
mod forward;
mod header;
mod inspect;
mod kernel;
mod manifest;
mod model;
mod prepared;
mod projection;
mod state;
mod version;

pub use aggregate::aggregate;
pub use bench::{BenchTimings, bench_states, time_decisions};
pub use catalog::{EnsembleCatalog, MemberMisfit, MemberSummary, check_members_fit};
pub use demand::{ACTIVATION_BATCH_LIVE, ensemble_demand, swap_load_bytes};
pub use ensemble::{Decision, Ensemble, ForwardMode, LoadOptions, candle_device};
pub use error::EnsembleError;
pub use forward::{InputSpec, STATE_CLIP};
pub use header::{SafetensorsHeader, TensorEntry};
pub use inspect::{InspectRow, Inspection, inspect, inspect_row, layer_sizes};
pub use manifest::{Activation, EnsembleParams, LayerSpec, MemberParams, MemberRef, Normalize};
pub use model::LoadedMember;
pub use prepared::{PreparedHour, lag_width};
pub use projection::MarketProjection;
pub use state::{check_single_input, parse_state};
pub use version::{
    CONSISTENT_LOAD_TRIES, EnsembleVersion, SelectionStamp, VERSION_HEX_DIGITS, VersionedMember,
    load_consistent,
};
