//! Every file in `configs/` parses, so the shipped profiles cannot rot.

use std::path::Path;

use trader_config::{HostConfig, Profile};

#[test]
fn every_shipped_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut profiles = 0;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "host.toml") {
            let host = HostConfig::from_file(&path).unwrap();
            assert!(host.tenants.iter().any(|t| t.name == "training-worker"));
        } else {
            let p = Profile::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                p.ensemble_dir.is_dir(),
                "{}: {} is not a directory",
                path.display(),
                p.ensemble_dir.display()
            );
            profiles += 1;
        }
    }
    assert!(profiles >= 2, "expected the full and lean profiles");
}

#[test]
fn full_and_lean_differ_only_in_the_knobs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let full = Profile::load("full", &dir).unwrap();
    let lean = Profile::load("lean", &dir).unwrap();
    assert_eq!(
        (full.top_n, full.history_hours, full.poll_interval_secs),
        (10, 120, 60)
    );
    assert_eq!(
        (lean.top_n, lean.history_hours, lean.poll_interval_secs),
        (5, 72, 120)
    );
    assert_eq!(full.symbols, lean.symbols);
    assert_eq!(full.ensemble_dir, lean.ensemble_dir);
    assert_eq!((full.dtype, full.device), (lean.dtype, lean.device));
}
