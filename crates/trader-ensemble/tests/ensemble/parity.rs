//! Rust inference against two independent references on the committed parity
//! fixture (`tests/fixtures/parity/`, made by `scripts/make_parity_fixtures.py`
//! through `scripts/export_torch.py`): the PyTorch modules themselves, and a
//! numpy-only implementation with its own safetensors parser.
//!
//! Tolerances:
//! - f32: 1e-5 relative (|a - b| <= 1e-5 * |b|). Outputs are tanh values of
//!   magnitude 0.037..1; measured worst 7.7e-6 relative (9.4e-7 absolute): the
//!   summation order of a 40-32-16 MLP differs between gemm and MKL/numpy, and
//!   a float64 recomputation puts candle closer to the exact value than torch.
//! - f16 vs the f32 reference: 1e-2 absolute. f16 keeps 11 significant bits
//!   (unit roundoff 4.9e-4). Inputs reach 10 (the clip) and pre-activations a
//!   few units, so rounding each of them once costs up to ~5e-3; through three
//!   layers a couple of such roundings add up. Measured worst: 3.6e-3.
//! - bf16 vs torch's own bf16 run: 3e-2 absolute. bf16 keeps 8 bits (unit
//!   roundoff 3.9e-3) and torch bf16 differs from f32 by up to 7.2e-3 itself;
//!   two bf16 implementations may round intermediate sums differently.
//!   Measured worst: 1.2e-2.

use std::path::{Path, PathBuf};

use trader_core::{Aggregate, ComputeDevice, DType};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

struct Expected {
    names: Vec<String>,
    /// [state][member][symbol]
    outputs: Vec<Vec<Vec<f32>>>,
}

fn expected(file: &str) -> Expected {
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(fixture().join(file)).unwrap()).unwrap();
    Expected {
        names: serde_json::from_value(v["names"].clone()).unwrap(),
        outputs: serde_json::from_value(v["outputs"].clone()).unwrap(),
    }
}

fn states() -> Vec<Vec<f32>> {
    serde_json::from_str(&fs_err::read_to_string(fixture().join("states.json")).unwrap()).unwrap()
}

fn load(dtype: DType, mode: ForwardMode, device: ComputeDevice) -> Ensemble {
    let catalog = EnsembleCatalog::open(&fixture().join("ensemble")).unwrap();
    Ensemble::load(
        &catalog,
        LoadOptions {
            top_n: 3,
            dtype,
            device,
            aggregate: Aggregate::Mean,
            mode,
        },
    )
    .unwrap()
}

/// Largest (absolute, relative) difference of Rust vs the reference.
fn compare(e: &Ensemble, reference: &Expected) -> (f32, f32) {
    let names: Vec<&str> = e.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, reference.names);
    let mut worst = (0.0f32, 0.0f32);
    for (state, want) in states().iter().zip(&reference.outputs) {
        let got = e.infer(std::slice::from_ref(state)).unwrap();
        for (g_row, w_row) in got.members.iter().zip(want) {
            for (g, w) in g_row.iter().zip(w_row) {
                let abs = (g - w).abs();
                worst.0 = worst.0.max(abs);
                worst.1 = worst.1.max(abs / w.abs());
            }
        }
    }
    worst
}

fn f32_matches_pytorch_and_numpy_within_1e5_relative(device: ComputeDevice) {
    for mode in [ForwardMode::Sequential, ForwardMode::Stacked] {
        let e = load(DType::F32, mode, device);
        for file in ["expected_torch.json", "expected_numpy.json"] {
            let (abs, rel) = compare(&e, &expected(file));
            eprintln!("{mode:?} vs {file}: rel {rel:e} abs {abs:e}");
            assert!(rel <= 1e-5, "{mode:?} vs {file}: rel {rel:e} (abs {abs:e})");
        }
    }
}

fn f16_stays_within_tolerance_of_the_f32_reference(device: ComputeDevice) {
    let (abs, _) = compare(
        &load(DType::F16, ForwardMode::Sequential, device),
        &expected("expected_torch.json"),
    );
    eprintln!("f16 vs f32 reference: abs {abs:e}");
    assert!(abs <= 1e-2, "f16 abs {abs:e}");
}

fn bf16_matches_pytorch_bf16_within_tolerance(device: ComputeDevice) {
    let (abs, _) = compare(
        &load(DType::Bf16, ForwardMode::Sequential, device),
        &expected("expected_torch_bf16.json"),
    );
    eprintln!("bf16 vs torch bf16: abs {abs:e}");
    assert!(abs <= 3e-2, "bf16 abs {abs:e}");
}

#[test]
fn fixture_exercises_normalisation_and_the_clip() {
    let catalog = EnsembleCatalog::open(&fixture().join("ensemble")).unwrap();
    let members = catalog.select(3).unwrap();
    assert!(members.iter().any(|m| m.params.normalize.is_some()));
    assert!(states().iter().flatten().any(|v| v.abs() > 10.0));
}

per_device!(
    f32_matches_pytorch_and_numpy_within_1e5_relative,
    f16_stays_within_tolerance_of_the_f32_reference,
    bf16_matches_pytorch_bf16_within_tolerance,
);
