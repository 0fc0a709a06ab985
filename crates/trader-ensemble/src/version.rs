//! Which members an ensemble holds, and when a directory's selection may
//! have changed:
//! - [`EnsembleVersion`]: a short content hash of the selected members'
//!   files (`params.json` and `actor.safetensors`, the bytes actually
//!   loaded) in rank order, with their names and scores. Two loads of the
//!   same selection give the same version, whatever the files' times.
//! - [`SelectionStamp`]: what a check can read cheaply (the ranked names of
//!   the best `top_n`, and each one's files' lengths and modification
//!   times). It changes whenever the version may have changed; a check at
//!   every poll costs one small file and a few `stat`s.
//! - [`load_consistent`]: a load the directory did not change under (the
//!   stamp read before and after is the same), so a selection written while
//!   it was read is never adopted half old, half new.

use std::fmt::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::catalog::{PARAMS_FILE, WEIGHTS_FILE};
use crate::{Ensemble, EnsembleCatalog, EnsembleError, LoadOptions};

/// Hex digits of a version: 48 bits, enough to tell apart every selection a
/// search writes.
pub const VERSION_HEX_DIGITS: usize = 12;

/// Tries of [`load_consistent`] before it gives up on a directory that keeps
/// changing under it.
pub const CONSISTENT_LOAD_TRIES: u32 = 3;

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One member of a version.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionedMember {
    /// The member's directory name.
    pub name: String,
    pub score: f64,
}

/// A loaded selection: its content hash and members, best first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnsembleVersion {
    /// [`VERSION_HEX_DIGITS`] hex digits of the SHA-256 over each member's
    /// name and the digests of its two files, in rank order.
    pub id: String,
    pub members: Vec<VersionedMember>,
}

impl EnsembleVersion {
    /// The version of members given as (name, score, params digest, weights
    /// digest), in rank order.
    pub(crate) fn of<'a>(
        members: impl IntoIterator<Item = (&'a str, f64, &'a [u8; 32], &'a [u8; 32])>,
    ) -> Self {
        let mut hasher = Sha256::new();
        let mut listed = Vec::new();
        for (name, score, params, weights) in members {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(params);
            hasher.update(weights);
            listed.push(VersionedMember {
                name: name.to_owned(),
                score,
            });
        }
        let digest = hasher.finalize();
        let id = digest
            .iter()
            .take(VERSION_HEX_DIGITS / 2)
            .fold(String::new(), |mut id, b| {
                let _ = write!(id, "{b:02x}");
                id
            });
        EnsembleVersion {
            id,
            members: listed,
        }
    }

    /// The members' mean score.
    #[must_use]
    pub fn mean_score(&self) -> f64 {
        mean(self.members.iter().map(|m| m.score))
    }
}

fn mean(scores: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = scores.fold((0.0, 0_u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / f64::from(n) }
}

/// The cheap picture of a directory's best `top_n`: their ranked names and
/// scores, and each one's files' lengths and modification times.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionStamp {
    /// Directory names, best first.
    pub names: Vec<String>,
    /// Their mean score.
    pub mean_score: f64,
    /// SHA-256 of the names and every file's length and time.
    digest: [u8; 32],
}

impl SelectionStamp {
    /// Reads the stamp of `dir`'s best `top_n`.
    ///
    /// # Errors
    /// As [`EnsembleCatalog::open`]; `top_n` larger than the directory
    /// holds; a selected member's file missing.
    pub fn read(dir: &Path, top_n: usize) -> Result<Self, EnsembleError> {
        let catalog = EnsembleCatalog::open(dir)?;
        if top_n == 0 || top_n > catalog.len() {
            return Err(EnsembleError::TopNTooLarge {
                top_n,
                available: catalog.len(),
                dir: dir.to_path_buf(),
            });
        }
        let mut hasher = Sha256::new();
        let mut names = Vec::with_capacity(top_n);
        let selected = &catalog.params.members[..top_n];
        for m in selected {
            hasher.update(m.dir.as_bytes());
            hasher.update([0]);
            for file in [PARAMS_FILE, WEIGHTS_FILE] {
                let path = dir.join(&m.dir).join(file);
                let meta = fs_err::metadata(&path)
                    .map_err(|source| EnsembleError::Read { path, source })?;
                let nanos = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                hasher.update(meta.len().to_le_bytes());
                hasher.update(nanos.to_le_bytes());
            }
            names.push(m.dir.clone());
        }
        Ok(SelectionStamp {
            names,
            mean_score: mean(selected.iter().map(|m| m.score)),
            digest: hasher.finalize().into(),
        })
    }
}

/// Loads `dir`'s best members with `options` while the directory holds
/// still: the [`SelectionStamp`] read before and after the load must be the
/// same, else the load is thrown away and tried again, up to
/// [`CONSISTENT_LOAD_TRIES`] times. Returns the ensemble and the stamp it
/// was loaded under.
///
/// # Errors
/// Any error of [`EnsembleCatalog::open`] or [`Ensemble::load`], or
/// [`EnsembleError::Unsettled`] when the directory changed during every try.
pub fn load_consistent(
    dir: &Path,
    options: LoadOptions,
) -> Result<(Ensemble, SelectionStamp), EnsembleError> {
    for _ in 0..CONSISTENT_LOAD_TRIES {
        let before = SelectionStamp::read(dir, options.top_n)?;
        let ensemble = Ensemble::load(&EnsembleCatalog::open(dir)?, options)?;
        let after = SelectionStamp::read(dir, options.top_n)?;
        if before == after {
            return Ok((ensemble, after));
        }
        tracing::debug!(dir = %dir.display(), "the ensemble directory changed while it was read; reading it again");
    }
    Err(EnsembleError::Unsettled {
        dir: dir.to_path_buf(),
        tries: CONSISTENT_LOAD_TRIES,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use trader_core::{Aggregate, ComputeDevice, DType};

    use super::*;
    use crate::ForwardMode;

    fn demo_copy() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
        let dir = tmp.path().join("demo");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::copy(
            demo.join("ensemble_params.json"),
            dir.join("ensemble_params.json"),
        )
        .unwrap();
        for entry in fs_err::read_dir(&demo).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                let to = dir.join(entry.file_name());
                fs_err::create_dir_all(&to).unwrap();
                for file in [PARAMS_FILE, WEIGHTS_FILE] {
                    fs_err::copy(entry.path().join(file), to.join(file)).unwrap();
                }
            }
        }
        (tmp, dir)
    }

    fn options(top_n: usize) -> LoadOptions {
        LoadOptions {
            top_n,
            dtype: DType::F32,
            device: ComputeDevice::Cpu,
            aggregate: Aggregate::Mean,
            mode: ForwardMode::Stacked,
        }
    }

    #[test]
    fn the_version_names_the_content_not_the_files_times() {
        let (_tmp, dir) = demo_copy();
        let (a, stamp_a) = load_consistent(&dir, options(3)).unwrap();
        assert_eq!(a.version().id.len(), VERSION_HEX_DIGITS);
        assert_eq!(a.version().members.len(), 3);
        // The same bytes written again: a new stamp, the same version.
        let best = dir.join(&a.version().members[0].name).join(WEIGHTS_FILE);
        let bytes = fs_err::read(&best).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::write(&best, &bytes).unwrap();
        let (b, stamp_b) = load_consistent(&dir, options(3)).unwrap();
        assert_eq!(a.version(), b.version());
        assert_ne!(stamp_a, stamp_b, "the stamp sees the write");
        // One weight changed (a finite value for another): a new version.
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 0x01;
        fs_err::write(&best, &changed).unwrap();
        let (c, _) = load_consistent(&dir, options(3)).unwrap();
        assert_ne!(a.version().id, c.version().id);
        // Another top_n is another selection.
        let (d, _) = load_consistent(&dir, options(2)).unwrap();
        assert_ne!(a.version().id, d.version().id);
    }

    #[test]
    fn a_stamp_names_a_missing_member_file() {
        let (_tmp, dir) = demo_copy();
        let stamp = SelectionStamp::read(&dir, 2).unwrap();
        let gone = dir.join(&stamp.names[1]).join(WEIGHTS_FILE);
        fs_err::remove_file(&gone).unwrap();
        let err = SelectionStamp::read(&dir, 2).unwrap_err().to_string();
        assert!(err.contains("actor.safetensors"), "{err}");
        assert!(
            SelectionStamp::read(&dir, 1).is_ok(),
            "the best one is whole"
        );
        assert!(SelectionStamp::read(&dir, 0).is_err());
    }
}
