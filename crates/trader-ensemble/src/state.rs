//! The state vector `trader ensemble infer` runs the ensemble on: a JSON
//! array of numbers, read as f64 and narrowed to f32, for an ensemble whose
//! members all read the same input.

use crate::{Ensemble, EnsembleError};

/// Parses a state vector from JSON text: an array of numbers, each narrowed
/// from f64 to f32 (no length or finiteness check here: [`Ensemble::infer`]
/// does those against the members' input).
///
/// # Errors
/// Text that is not a JSON array of numbers.
pub fn parse_state(text: &str) -> Result<Vec<f32>, serde_json::Error> {
    let values: Vec<f64> = serde_json::from_str(text)?;
    Ok(values.into_iter().map(|v| v as f32).collect())
}

/// Checks that the loaded members read one input (the same lookback and
/// features), so that one state vector feeds them all.
///
/// # Errors
/// [`EnsembleError::MixedInputs`] when they read several.
pub fn check_single_input(ensemble: &Ensemble) -> Result<(), EnsembleError> {
    match ensemble.specs().len() {
        1 => Ok(()),
        inputs => Err(EnsembleError::MixedInputs { inputs }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use trader_core::{Aggregate, ComputeDevice, DType};

    use super::*;
    use crate::{EnsembleCatalog, ForwardMode, LoadOptions};

    #[test]
    fn numbers_narrow_to_f32() {
        assert_eq!(
            parse_state("[0, -1.5, 0.1, 1e3]").unwrap(),
            vec![0.0, -1.5, 0.1_f64 as f32, 1000.0]
        );
        assert_eq!(parse_state(" [] ").unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn anything_but_an_array_of_numbers_is_refused() {
        for bad in ["", "{}", "[1, \"2\"]", "[1, null]", "1", "[1,"] {
            assert!(parse_state(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_fixture_reads_one_input_and_takes_a_parsed_state() {
        let catalog = EnsembleCatalog::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixture-small"),
        )
        .unwrap();
        let ensemble = Ensemble::load(
            &catalog,
            LoadOptions {
                top_n: 2,
                dtype: DType::F32,
                device: ComputeDevice::Cpu,
                aggregate: Aggregate::Mean,
                mode: ForwardMode::Sequential,
            },
        )
        .unwrap();
        check_single_input(&ensemble).unwrap();
        let text = serde_json::to_string(&vec![0.25_f64; 364]).unwrap();
        let decision = ensemble.infer(&[parse_state(&text).unwrap()]).unwrap();
        assert_eq!(decision.members.len(), 2);
    }

    #[test]
    fn mixed_inputs_keep_the_cli_message() {
        assert_eq!(
            EnsembleError::MixedInputs { inputs: 2 }.to_string(),
            "the selected members read 2 different inputs (lookback/features); `infer` takes one state vector"
        );
    }
}
