//! Helpers shared by the CLI tests: run the built `trader`, find the repo's files,
//! and make throw-away copies of configs and ensembles to break.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::must_use_candidate,
    clippy::missing_panics_doc
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn configs() -> PathBuf {
    repo().join("configs")
}

pub fn trader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("spawn trader")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temp dir holding `configs/` (copies of the shipped ones, pointing at a copy
/// of the fixture ensemble in `models/fixture-small`), to be broken by a test.
pub fn sandbox() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&configs(), &tmp.path().join("configs"));
    copy_dir(
        &repo().join("models/fixture-small"),
        &tmp.path().join("models/fixture-small"),
    );
    tmp
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}
