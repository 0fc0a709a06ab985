//! What `trader ensemble inspect` shows: one row per selected member (rank,
//! directory, score, layer sizes, parameters, bytes at a dtype, lookback,
//! features, hours of history needed) and the totals.

use serde::Serialize;
use trader_core::DType;

use crate::{EnsembleCatalog, EnsembleError, MemberParams, MemberSummary};

/// One member as `inspect` lists it. Field order is the JSON key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectRow {
    /// 1 = best score.
    pub rank: usize,
    /// The member's directory name (`trial_0007`).
    pub dir: String,
    pub score: f64,
    /// The layer sizes joined by `-`: inputs of each layer, then the last
    /// layer's outputs (`364-64-32-3`).
    pub layers: String,
    pub parameters: u64,
    /// `parameters` times the dtype's size.
    pub bytes: u64,
    pub lookback: u32,
    /// How many features the member reads.
    pub features: usize,
    pub required_history_hours: u32,
}

/// The rows of the best members and their totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub rows: Vec<InspectRow>,
    /// Sum of the rows' `parameters`.
    pub total_parameters: u64,
    /// Sum of the rows' `bytes`.
    pub total_bytes: u64,
}

/// The layer sizes of a member: each layer's inputs, then the last layer's
/// outputs (0 without layers), joined by `-`.
#[must_use]
pub fn layer_sizes(params: &MemberParams) -> String {
    let mut dims: Vec<String> = params.layers.iter().map(|l| l.inputs.to_string()).collect();
    dims.push(params.layers.last().map_or(0, |l| l.outputs).to_string());
    dims.join("-")
}

/// One member's row, its bytes counted at `dtype`.
#[must_use]
pub fn inspect_row(member: &MemberSummary, dtype: DType) -> InspectRow {
    InspectRow {
        rank: member.rank + 1,
        dir: member.name.clone(),
        score: member.score,
        layers: layer_sizes(&member.params),
        parameters: member.parameter_count(),
        bytes: member.parameter_count() * dtype.size_in_bytes(),
        lookback: member.params.lookback,
        features: member.params.features.len(),
        required_history_hours: member.params.required_history_hours(),
    }
}

/// The best `top_n` members of `catalog` as rows, best first, with totals.
///
/// # Errors
/// Those of [`EnsembleCatalog::select`]: `top_n` of 0 or above the member
/// count, or a member whose manifest or header is missing or wrong.
pub fn inspect(
    catalog: &EnsembleCatalog,
    top_n: usize,
    dtype: DType,
) -> Result<Inspection, EnsembleError> {
    let rows: Vec<InspectRow> = catalog
        .select(top_n)?
        .iter()
        .map(|m| inspect_row(m, dtype))
        .collect();
    Ok(Inspection {
        total_parameters: rows.iter().map(|r| r.parameters).sum(),
        total_bytes: rows.iter().map(|r| r.bytes).sum(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn fixture() -> EnsembleCatalog {
        EnsembleCatalog::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixture-small"),
        )
        .unwrap()
    }

    /// 364*64+64 + 64*32+32 + 32*3+3, from the fixture's layer sizes.
    const PER_MEMBER: u64 = 364 * 64 + 64 + 64 * 32 + 32 + 32 * 3 + 3;

    #[test]
    fn rows_follow_the_rank_with_sizes_and_totals() {
        let catalog = fixture();
        let all = inspect(&catalog, catalog.len(), DType::F32).unwrap();
        assert_eq!(all.rows.len(), 10);
        assert_eq!(all.rows[0].rank, 1);
        assert_eq!(all.rows[0].dir, "trial_0004");
        assert_eq!(all.rows[0].layers, "364-64-32-3");
        assert!(all.rows.iter().all(|r| r.parameters == PER_MEMBER));
        assert!(all.rows.iter().all(|r| r.bytes == PER_MEMBER * 4));
        assert!(all.rows.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(
            all.rows
                .iter()
                .enumerate()
                .all(|(i, r)| r.rank == i + 1 && r.features > 0 && r.lookback > 0)
        );
        assert!(
            all.rows
                .iter()
                .all(|r| r.required_history_hours >= r.lookback)
        );
        assert_eq!(all.total_parameters, 10 * PER_MEMBER);
        assert_eq!(all.total_bytes, 10 * PER_MEMBER * 4);
    }

    #[test]
    fn bytes_follow_the_dtype_and_top_n_limits_the_rows() {
        let two = inspect(&fixture(), 2, DType::F16).unwrap();
        assert_eq!(two.rows.len(), 2);
        assert_eq!(two.total_parameters, 51_078);
        assert_eq!(two.total_bytes, 102_156);
    }

    #[test]
    fn a_bad_top_n_is_the_catalogs_error() {
        let catalog = fixture();
        assert!(matches!(
            inspect(&catalog, 0, DType::F32),
            Err(EnsembleError::TopNZero { .. })
        ));
        assert!(matches!(
            inspect(&catalog, 11, DType::F32),
            Err(EnsembleError::TopNTooLarge { .. })
        ));
    }
}
