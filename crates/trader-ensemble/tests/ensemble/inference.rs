//! The ensemble API on the committed fixture: determinism, stacked vs
//! sequential, dtypes, aggregation and per-member actions.

use std::path::Path;

use trader_core::{Aggregate, ComputeDevice, DType};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions, aggregate};

fn catalog() -> EnsembleCatalog {
    EnsembleCatalog::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixture-small"))
        .unwrap()
}

fn options(top_n: usize, dtype: DType, mode: ForwardMode, device: ComputeDevice) -> LoadOptions {
    LoadOptions {
        top_n,
        dtype,
        device,
        aggregate: Aggregate::Mean,
        mode,
    }
}

fn state(seed: u32) -> Vec<f32> {
    (0..364u32)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0) - 1.0)
        .collect()
}

fn same_input_gives_the_same_output_bit_for_bit(device: ComputeDevice) {
    let e = Ensemble::load(
        &catalog(),
        options(10, DType::F32, ForwardMode::Sequential, device),
    )
    .unwrap();
    let a = e.infer(&[state(1)]).unwrap();
    let b = e.infer(&[state(1)]).unwrap();
    let bits = |d: &trader_ensemble::Decision| -> Vec<u32> {
        d.members
            .iter()
            .flatten()
            .chain(&d.aggregate)
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(bits(&a), bits(&b));
    // A second load gives the same bits too.
    let e2 = Ensemble::load(
        &catalog(),
        options(10, DType::F32, ForwardMode::Sequential, device),
    )
    .unwrap();
    assert_eq!(bits(&a), bits(&e2.infer(&[state(1)]).unwrap()));
    // Different states give different actions (the model is not constant).
    assert_ne!(bits(&a), bits(&e.infer(&[state(2)]).unwrap()));
}

fn stacked_matches_sequential(device: ComputeDevice) {
    let seq = Ensemble::load(
        &catalog(),
        options(10, DType::F32, ForwardMode::Sequential, device),
    )
    .unwrap();
    let stk = Ensemble::load(
        &catalog(),
        options(10, DType::F32, ForwardMode::Stacked, device),
    )
    .unwrap();
    for seed in 0..5 {
        let a = seq.infer(&[state(seed)]).unwrap();
        let b = stk.infer(&[state(seed)]).unwrap();
        for (ra, rb) in a.members.iter().zip(&b.members) {
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() <= 1e-6, "{x} vs {y}");
            }
        }
    }
}

fn half_precisions_stay_close_to_f32(device: ComputeDevice) {
    let f32e = Ensemble::load(
        &catalog(),
        options(5, DType::F32, ForwardMode::Sequential, device),
    )
    .unwrap();
    for (dtype, tol) in [(DType::F16, 2e-3), (DType::Bf16, 2e-2)] {
        let e = Ensemble::load(
            &catalog(),
            options(5, dtype, ForwardMode::Sequential, device),
        )
        .unwrap();
        let a = f32e.infer(&[state(3)]).unwrap();
        let b = e.infer(&[state(3)]).unwrap();
        let worst = a
            .members
            .iter()
            .flatten()
            .zip(b.members.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= tol, "{dtype}: max abs diff {worst} > {tol}");
    }
}

fn members_follow_the_rank_and_the_aggregate_is_computed_from_them(device: ComputeDevice) {
    let mut o = options(4, DType::F32, ForwardMode::Sequential, device);
    o.aggregate = Aggregate::Vote;
    let e = Ensemble::load(&catalog(), o).unwrap();
    let names: Vec<&str> = e.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["trial_0004", "trial_0009", "trial_0007", "trial_0008"]
    );
    let d = e.infer(&[state(4)]).unwrap();
    assert_eq!(d.aggregate, aggregate(&d.members, Aggregate::Vote));
    assert_eq!(d.members.len(), 4);
}

fn clip_bounds_extreme_inputs(device: ComputeDevice) {
    let e = Ensemble::load(
        &catalog(),
        options(1, DType::F32, ForwardMode::Sequential, device),
    )
    .unwrap();
    let mut big = state(5);
    let mut clipped = big.clone();
    for (i, v) in big.iter_mut().enumerate().skip(4) {
        if i % 3 == 0 {
            *v = 1e6;
            clipped[i] = 10.0;
        }
    }
    assert_eq!(e.infer(&[big]).unwrap(), e.infer(&[clipped]).unwrap());
}

per_device!(
    same_input_gives_the_same_output_bit_for_bit,
    stacked_matches_sequential,
    half_precisions_stay_close_to_f32,
    members_follow_the_rank_and_the_aggregate_is_computed_from_them,
    clip_bounds_extreme_inputs,
);
