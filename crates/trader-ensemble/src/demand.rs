//! This crate's memory demand: the one source of truth for the budgeter's
//! weights, load-transient and activation terms.

use trader_core::{ComputeDevice, DType, DemandTerm};

use crate::{MemberSummary, TensorEntry};

/// Rows per forward pass in live trading (one state vector per decision).
pub const ACTIVATION_BATCH_LIVE: u64 = 1;

/// The demand of running `members` at `dtype` on `device`:
/// - **weights**: one copy, parameters (from the headers) x bytes of `dtype`;
///   in RAM on the CPU, in VRAM on CUDA.
/// - **load transient**: members load one at a time, each file read in one
///   pass (no copy of the file is held). On the CPU in f32 and f16 each
///   member's values go straight into its slot of the stacked weights:
///   loading holds only the read buffers beside them. Otherwise each member's tensors are
///   built as stored, plus, when stored in another dtype than `dtype`, the
///   largest one converted, then copied into the stacked weights and freed.
///   The largest member counts. (Measured: BENCHMARKS.md.)
/// - **activations**: per member, the input column and every layer's output,
///   at f32, for `batch` rows; tiny for live trading, but honest for batches.
/// - **half-precision matmul** (f16 and bf16 on the CPU only): the largest
///   layer of one member at f32. Half-precision products run through candle
///   on gemm, which converts the weights to f32 as it packs them and keeps
///   its packing buffer; fitted on `scripts/bench_budget.sh`'s f16 rows
///   (issue 18, round 4: once loads read in place, the f16 backtests peaked
///   0.1-0.7 MB above their other terms), not isolated on its own.
#[must_use]
pub fn ensemble_demand(
    members: &[MemberSummary],
    dtype: DType,
    device: ComputeDevice,
    batch: u64,
) -> Vec<DemandTerm> {
    let params: u64 = members.iter().map(MemberSummary::parameter_count).sum();
    let weight_bytes = params * dtype.size_in_bytes();
    let transient = members
        .iter()
        .map(|m| load_transient(m, dtype, device))
        .max()
        .unwrap_or(0);
    let floats_per_row: u64 = members
        .iter()
        .map(|m| {
            m.params.state_dim() as u64
                + m.params
                    .layers
                    .iter()
                    .map(|l| l.outputs as u64)
                    .sum::<u64>()
        })
        .sum();
    let activation_bytes = floats_per_row * 4 * batch;
    let (weights_ram, weights_vram, act_ram, act_vram) = match device {
        ComputeDevice::Cpu => (weight_bytes, 0, activation_bytes, 0),
        ComputeDevice::Cuda => (0, weight_bytes, 0, activation_bytes),
    };
    let mut terms = vec![
        DemandTerm::new(
            "weights",
            weights_ram,
            weights_vram,
            format!(
                "{} params in {} members x {} B ({dtype})",
                group_digits(params),
                members.len(),
                dtype.size_in_bytes()
            ),
        ),
        DemandTerm::new(
            "load transient",
            transient,
            0,
            if crate::model::loads_in_place(dtype, device) {
                "read buffers: each member's file is read straight into the stacked weights"
                    .to_owned()
            } else {
                "largest member: its tensors as stored (+ its largest converted)".to_owned()
            },
        ),
        DemandTerm::new(
            "activations",
            act_ram,
            act_vram,
            format!(
                "{} floats per row x {batch} rows x 4 B",
                group_digits(floats_per_row)
            ),
        ),
    ];
    if device == ComputeDevice::Cpu && dtype != DType::F32 {
        let largest = members
            .iter()
            .flat_map(|m| &m.header.tensors)
            .map(TensorEntry::elements)
            .max()
            .unwrap_or(0);
        terms.push(DemandTerm::new(
            "half-precision matmul",
            largest * 4,
            0,
            format!(
                "gemm's packing: the largest layer ({} values) at f32",
                group_digits(largest)
            ),
        ));
    }
    terms
}

/// Bytes of one stored value of a safetensors dtype name.
fn stored_value_bytes(dtype: &str) -> u64 {
    match dtype {
        "F16" | "BF16" => 2,
        "F64" => 8,
        _ => 4,
    }
}

/// The safetensors name of `dtype`.
fn stored_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::Bf16 => "BF16",
    }
}

/// The member's tensors as stored, in bytes (its file less its header).
fn stored_bytes(member: &MemberSummary) -> u64 {
    member
        .header
        .tensors
        .iter()
        .map(|t| t.elements() * stored_value_bytes(&t.dtype))
        .sum()
}

/// Extra bytes held while one member loads at `dtype` on `device`: the read
/// buffers when it loads in place; otherwise its tensors as stored, plus its
/// largest tensor converted when it is stored in another dtype (the
/// conversion holds both for that tensor).
fn load_transient(member: &MemberSummary, dtype: DType, device: ComputeDevice) -> u64 {
    if crate::model::loads_in_place(dtype, device) {
        return crate::model::READ_BUFFER_BYTES;
    }
    let converted = member
        .header
        .tensors
        .iter()
        .filter(|t| t.dtype != stored_name(dtype))
        .map(|t| t.elements() * dtype.size_in_bytes())
        .max()
        .unwrap_or(0);
    stored_bytes(member) + converted
}

/// What one more load leaves resident beside the weights when it runs on
/// another thread than the first (a running trader's swap, on a blocking
/// thread: glibc gives it its own heap, which keeps what the load freed).
/// A load in place ([`crate::model::loads_in_place`]) frees nothing but its
/// read buffers: a swap then peaked at the two ensembles' weights and 0.1 MB
/// (BENCHMARKS.md, issue 18 round 4). Otherwise the largest member's file,
/// its tensors as stored and its largest tensor as f32, as measured at the
/// reference size when every load held all three (BENCHMARKS.md, "Live
/// ensemble swap"); a load now holds no copy of the file, so an upper bound.
#[must_use]
pub fn swap_load_bytes(members: &[MemberSummary], dtype: DType, device: ComputeDevice) -> u64 {
    if crate::model::loads_in_place(dtype, device) {
        return crate::model::READ_BUFFER_BYTES;
    }
    members
        .iter()
        .map(|m| {
            let largest = m
                .header
                .tensors
                .iter()
                .map(|t| t.elements() * 4)
                .max()
                .unwrap_or(0);
            m.header.file_bytes + stored_bytes(m) + largest
        })
        .max()
        .unwrap_or(0)
}

/// `1234567` -> `1,234,567`.
fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::group_digits;

    #[test]
    fn groups_digits_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(503_299), "503,299");
        assert_eq!(group_digits(5_032_990), "5,032,990");
    }
}
