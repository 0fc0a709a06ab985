//! What an ensemble directory that is not laid out as expected is called:
//! each message says what is wrong with the path, not something it is not.

use std::path::{Path, PathBuf};

use trader_ensemble::{EnsembleCatalog, SafetensorsHeader};

/// A copy of the three-member parity fixture in a temporary directory.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
        fs_err::create_dir_all(to).unwrap();
        for entry in fs_err::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                fs_err::copy(entry.path(), target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ensemble");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/ensemble"),
        &dir,
    );
    (tmp, dir)
}

#[test]
fn a_missing_ensemble_dir_does_not_exist_and_a_file_is_called_a_file() {
    let (tmp, dir) = fixture_copy();
    let err = EnsembleCatalog::open(&tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
    let file = dir.join("ensemble_params.json");
    let err = EnsembleCatalog::open(&file).unwrap_err().to_string();
    assert!(
        err.contains("ensemble_params.json")
            && err.contains("is a file, not a directory")
            && !err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_member_dir_that_is_a_file_is_called_a_file() {
    let (_tmp, dir) = fixture_copy();
    let member = dir.join("trial_0002");
    fs_err::remove_dir_all(&member).unwrap();
    fs_err::write(&member, "not a directory").unwrap();
    let err = EnsembleCatalog::open(&dir)
        .unwrap()
        .select(3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trial_0002")
            && err.contains("is a file, not a directory")
            && !err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn an_actor_safetensors_that_is_a_directory_is_called_a_directory() {
    let (_tmp, dir) = fixture_copy();
    let weights = dir.join("trial_0000/actor.safetensors");
    fs_err::remove_file(&weights).unwrap();
    fs_err::create_dir(&weights).unwrap();
    let direct = SafetensorsHeader::read(&weights).unwrap_err().to_string();
    let selected = EnsembleCatalog::open(&dir)
        .unwrap()
        .select(1)
        .unwrap_err()
        .to_string();
    for err in [direct, selected] {
        assert!(
            err.contains("trial_0000")
                && err.contains("actor.safetensors")
                && err.contains("is a directory, not a safetensors file")
                && !err.contains("too short"),
            "{err}"
        );
    }
}

#[test]
fn a_params_json_that_is_a_directory_is_called_a_directory() {
    let (_tmp, dir) = fixture_copy();
    let params = dir.join("trial_0000/params.json");
    fs_err::remove_file(&params).unwrap();
    fs_err::create_dir(&params).unwrap();
    let err = EnsembleCatalog::open(&dir)
        .unwrap()
        .select(1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trial_0000") && err.contains("params.json is a directory"),
        "{err}"
    );
}

#[test]
fn top_n_of_zero_says_top_n_must_be_at_least_1() {
    let (_tmp, dir) = fixture_copy();
    let catalog = EnsembleCatalog::open(&dir).unwrap();
    let err = catalog.select(0).unwrap_err().to_string();
    assert!(
        err.contains("top_n = 0") && err.contains("at least 1") && !err.contains("has only"),
        "{err}"
    );
    // Too many members still says how many there are.
    let err = catalog.select(4).unwrap_err().to_string();
    assert!(
        err.contains("top_n = 4") && err.contains("has only 3 members"),
        "{err}"
    );
}
