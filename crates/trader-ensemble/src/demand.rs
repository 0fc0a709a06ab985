//! This crate's memory demand: the one source of truth for the budgeter's
//! weights, load-transient and activation terms.

use trader_core::{ComputeDevice, DType, DemandTerm};

use crate::MemberSummary;

/// Rows per forward pass in live trading (one state vector per decision).
pub const ACTIVATION_BATCH_LIVE: u64 = 1;

/// The demand of running `members` at `dtype` on `device`:
/// - **weights**: one copy, parameters (from the headers) x bytes of `dtype`;
///   in RAM on the CPU, in VRAM on CUDA.
/// - **load transient**: members are loaded one at a time and each file buffer
///   is dropped before the next, so loading adds at most the largest member
///   file (it always passes through host RAM).
/// - **activations**: per member, the input row and every layer's output, at
///   f32, for `batch` rows; tiny for live trading, but honest for batches.
#[must_use]
pub fn ensemble_demand(
    members: &[MemberSummary],
    dtype: DType,
    device: ComputeDevice,
    batch: u64,
) -> Vec<DemandTerm> {
    let params: u64 = members.iter().map(MemberSummary::parameter_count).sum();
    let weight_bytes = params * dtype.size_in_bytes();
    let largest = members
        .iter()
        .map(|m| m.header.file_bytes)
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
    vec![
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
            largest,
            0,
            "largest member file, held while it loads".to_owned(),
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
    ]
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
