//! The batched first layer ([`Ensemble::project_market`] +
//! [`Ensemble::infer_projected`]) against the plain forward pass, on the
//! parity fixture (per-feature normalisation, inputs beyond the clip) and on
//! the fixture ensemble, in both forward modes.
//!
//! Tolerance: 1e-5 absolute on tanh outputs. Splitting `W x` into
//! `W_p x_p + W_m x_m` only changes the order of an f32 sum.

use std::path::{Path, PathBuf};

use trader_core::{Aggregate, ComputeDevice, DType};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn load(dir: &Path, top_n: usize, mode: ForwardMode, device: ComputeDevice) -> Ensemble {
    Ensemble::load(
        &EnsembleCatalog::open(dir).unwrap(),
        LoadOptions {
            top_n,
            dtype: DType::F32,
            device,
            aggregate: Aggregate::Mean,
            mode,
        },
    )
    .unwrap()
}

/// Projects every state's market part at once, then decides each row and
/// compares with `infer` on the whole state; returns the worst difference.
fn worst_difference(e: &Ensemble, states: &[Vec<f32>]) -> f32 {
    assert_eq!(e.specs().len(), 1, "fixtures have one input spec");
    let p = e.specs()[0].portfolio_dim();
    let block: Vec<f32> = states.iter().flat_map(|s| s[p..].to_vec()).collect();
    let projection = e.project_market(&[block], states.len()).unwrap();
    assert_eq!(projection.rows(), states.len());
    let mut worst = 0.0f32;
    for (row, state) in states.iter().enumerate() {
        let plain = e.infer(std::slice::from_ref(state)).unwrap();
        let batched = e
            .infer_projected(&projection, row, &[state[..p].to_vec()])
            .unwrap();
        assert_eq!(plain.members.len(), batched.members.len());
        for (a, b) in plain
            .members
            .iter()
            .flatten()
            .zip(batched.members.iter().flatten())
        {
            worst = worst.max((a - b).abs());
        }
        for (a, b) in plain.aggregate.iter().zip(&batched.aggregate) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

fn batched_first_layer_matches_the_plain_pass_with_normalisation_and_clip(device: ComputeDevice) {
    let states: Vec<Vec<f32>> = serde_json::from_str(
        &fs_err::read_to_string(root().join("tests/fixtures/parity/states.json")).unwrap(),
    )
    .unwrap();
    for mode in [ForwardMode::Stacked, ForwardMode::Sequential] {
        let e = load(
            &root().join("tests/fixtures/parity/ensemble"),
            3,
            mode,
            device,
        );
        let worst = worst_difference(&e, &states);
        assert!(worst <= 1e-5, "{mode:?}: worst difference {worst}");
    }
}

fn batched_first_layer_matches_the_plain_pass_on_the_fixture_ensemble(device: ComputeDevice) {
    let states: Vec<Vec<f32>> = (0..50u32)
        .map(|seed| {
            (0..364u32)
                .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 250.0) - 2.0)
                .collect()
        })
        .collect();
    for mode in [ForwardMode::Stacked, ForwardMode::Sequential] {
        let e = load(&root().join("../../models/fixture-small"), 10, mode, device);
        let worst = worst_difference(&e, &states);
        assert!(worst <= 1e-5, "{mode:?}: worst difference {worst}");
        // Not trivially equal: the members disagree, so a mix-up would show.
        let d = e.infer(&[states[0].clone()]).unwrap();
        assert!(d.members[0] != d.members[1]);
    }
}

fn bad_projection_inputs_are_named(device: ComputeDevice) {
    let e = load(
        &root().join("../../models/fixture-small"),
        10,
        ForwardMode::Stacked,
        device,
    );
    let err = e
        .project_market(&[vec![0.0; 10]], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 2 hours x 360"), "{err}");
    let err = e.project_market(&[], 0).unwrap_err().to_string();
    assert!(err.contains("0 market blocks given for 1"), "{err}");
    let mut block = vec![0.0; 720];
    block[5] = f32::NAN;
    let err = e.project_market(&[block], 2).unwrap_err().to_string();
    assert!(err.contains("non-finite value (NaN) at index 5"), "{err}");
    let projection = e.project_market(&[vec![0.0; 720]], 2).unwrap();
    let err = e
        .infer_projected(&projection, 2, &[vec![1.0, 0.0, 0.0, 0.0]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hour 2 asked of a projection of 2 hours"),
        "{err}"
    );
    let err = e
        .infer_projected(&projection, 0, &[vec![1.0, 0.0]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("portfolio parts do not match"), "{err}");
}

/// Hours decided together ([`Ensemble::infer_projected_hours`]) decide
/// what each decides alone, bit for bit, whatever hours run beside it (5
/// hours: a group of four and one more, in another order), in f32 (the
/// kernels) and f16 (candle, hour by hour).
fn hours_decided_together_decide_as_each_alone(device: ComputeDevice) {
    let states: Vec<Vec<f32>> = (0..6u32)
        .map(|seed| {
            (0..364u32)
                .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 250.0) - 2.0)
                .collect()
        })
        .collect();
    for dtype in [DType::F32, DType::F16] {
        let e = Ensemble::load(
            &EnsembleCatalog::open(&root().join("../../models/fixture-small")).unwrap(),
            LoadOptions {
                top_n: 10,
                dtype,
                device,
                aggregate: Aggregate::Mean,
                mode: ForwardMode::Stacked,
            },
        )
        .unwrap();
        let p = e.specs()[0].portfolio_dim();
        let block: Vec<f32> = states.iter().flat_map(|s| s[p..].to_vec()).collect();
        let projection = e.project_market(&[block], states.len()).unwrap();
        let hours: Vec<(usize, Vec<Vec<f32>>)> = [4, 0, 5, 2, 1]
            .into_iter()
            .map(|row| (row, vec![states[row][..p].to_vec()]))
            .collect();
        let together = e.infer_projected_hours(&projection, &hours).unwrap();
        assert_eq!(together.len(), hours.len());
        for ((row, portfolio), decision) in hours.iter().zip(&together) {
            let alone = e.infer_projected(&projection, *row, portfolio).unwrap();
            assert_eq!(&alone, decision, "{dtype:?}, hour {row}");
        }
        // The hours differ: a mix-up of hours would show.
        assert_ne!(together[0], together[1]);
        let err = e
            .infer_projected_hours(
                &projection,
                &[(0, hours[0].1.clone()), (6, hours[0].1.clone())],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hour 6 asked of a projection of 6 hours"),
            "{err}"
        );
    }
}

per_device!(
    batched_first_layer_matches_the_plain_pass_with_normalisation_and_clip,
    batched_first_layer_matches_the_plain_pass_on_the_fixture_ensemble,
    bad_projection_inputs_are_named,
    hours_decided_together_decide_as_each_alone,
);
