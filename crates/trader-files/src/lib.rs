//! Output files, written whole or not at all: each is written to a temporary
//! file in its own folder, flushed to disk, then renamed over the old one, so
//! a full disk or a kill leaves the previous file (or none), never a
//! truncated one. A set of files is staged first and renamed only when every
//! one of them is written. Every error names the file it was writing.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::NamedTempFile;

/// How the temporary files of this module end; [`remove_stale`] removes
/// the ones a killed process left behind.
const TEMP_SUFFIX: &str = ".partial";

/// Files written in their folders but not yet in place.
#[derive(Default)]
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
    /// Readable by this user only (a temporary file's 0600), instead of
    /// the 0666 less the umask of a file written in place.
    private: bool,
}

impl Staged {
    /// A set of files readable by this user only (secrets).
    #[must_use]
    pub fn private() -> Self {
        Staged {
            files: Vec::new(),
            private: true,
        }
    }

    /// Writes `bytes` to a temporary file beside `path`.
    pub fn add(&mut self, path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
        self.add_with(path, |tmp| {
            fs_err::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(tmp)?
                .write_all(bytes.as_ref())?;
            Ok(())
        })
    }

    /// Lets `write` fill a temporary file beside `path` (given its path),
    /// for writers that open the file themselves.
    pub fn add_with(
        &mut self,
        path: &Path,
        write: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (dir, name) = split(path)?;
        let mode = if self.private { 0o600 } else { 0o666 };
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(TEMP_SUFFIX)
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "writing {}: creating a file in {}",
                    path.display(),
                    dir.display()
                )
            })?;
        write(tmp.path()).with_context(|| format!("writing {}", path.display()))?;
        // On disk before the rename: a full disk fails here at the latest.
        tmp.as_file().sync_all().with_context(|| {
            format!(
                "writing {}: flushing {}",
                path.display(),
                tmp.path().display()
            )
        })?;
        self.files.push((tmp, path.to_path_buf()));
        Ok(())
    }

    /// Renames every staged file over its target, in the order added.
    pub fn commit(self) -> anyhow::Result<()> {
        for (tmp, path) in self.files {
            tmp.persist(&path).map_err(|e| e.error).with_context(|| {
                format!(
                    "writing {}: renaming the finished file into place",
                    path.display()
                )
            })?;
        }
        Ok(())
    }
}

/// Writes one file whole or not at all, readable by this user only.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut staged = Staged::private();
    staged.add(path, bytes)?;
    staged.commit()
}

/// Removes the temporary files a killed writer left in `dir` (not the
/// files in place). A missing `dir` has none.
pub fn remove_stale(dir: &Path) -> anyhow::Result<()> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            fs_err::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The folder and file name of an output path.
fn split(path: &Path) -> anyhow::Result<(&Path, String)> {
    let name = path
        .file_name()
        .with_context(|| format!("writing {}: not a file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_atomic(path: &Path, bytes: &str) -> anyhow::Result<()> {
        let mut staged = Staged::default();
        staged.add(path, bytes)?;
        staged.commit()
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomic(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
    }

    /// Output files get the mode of a plain write (0666 less the umask),
    /// secrets 0600.
    #[test]
    fn files_get_the_mode_of_a_plain_write_and_secrets_stay_private() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, secret) = (dir.path().join("plain"), dir.path().join("secret"));
        fs_err::write(&plain, "x").unwrap();
        let expected = fs_err::metadata(&plain).unwrap().permissions().mode();
        write_atomic(&plain, "y").unwrap();
        write_private(&secret, "key").unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&plain), expected & 0o777);
        assert_eq!(mode(&secret), 0o600);
    }

    #[test]
    fn missing_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("metrics.json");
        let err = format!("{:#}", write_atomic(&path, "x").unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn failed_write_leaves_the_previous_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.csv");
        write_atomic(&path, "previous run\n").unwrap();
        let err = Staged::default()
            .add_with(&path, |_| anyhow::bail!("No space left on device"))
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains(&path.display().to_string()) && err.contains("No space"),
            "{err}"
        );
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "previous run\n");
        remove_stale(dir.path()).unwrap();
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A set is replaced only when every file of it is written: the first
    /// file stays old when the second fails.
    #[test]
    fn staged_set_replaces_nothing_when_one_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("metrics.json"),
            dir.path().join("equity.csv"),
        );
        write_atomic(&a, "old a").unwrap();
        write_atomic(&b, "old b").unwrap();
        let mut staged = Staged::default();
        staged.add(&a, "new a").unwrap();
        assert!(staged.add_with(&b, |_| anyhow::bail!("disk full")).is_err());
        drop(staged);
        assert_eq!(fs_err::read_to_string(&a).unwrap(), "old a");
        assert_eq!(fs_err::read_to_string(&b).unwrap(), "old b");
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 2);
    }
}
