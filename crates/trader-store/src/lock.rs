//! One trader per store and profile: an exclusive OS lock on the file
//! `STORE.PROFILE.lock` beside the store, held for the life of the run.
//!
//! The kernel releases the lock when its holder exits, however it exits, so a
//! lock left by a trader killed with SIGKILL is recognised (the file is no
//! longer locked) and taken over, with a log line naming the dead holder. The
//! file says who holds it (command, pid, host, since when), for the message a
//! second trader gets. A released lock leaves an empty file behind: the file
//! is never removed, so two processes can never lock two different files of
//! the same name.

use std::fs::TryLockError;

use fs_err::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// An exclusive lock on (store, profile); released on drop.
#[derive(Debug)]
pub struct ProfileLock {
    file: File,
    path: PathBuf,
    /// Who held it before, when that holder died without releasing it.
    taken_over: Option<String>,
}

/// The lock file of `profile` beside `store`.
#[must_use]
pub fn lock_path(store: &Path, profile: &str) -> PathBuf {
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    store.with_file_name(format!("{name}.{safe}.lock"))
}

fn host_name() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs_err::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// The lock held while a store is opened and migrated (`STORE.open.lock`),
/// waited for (asynchronously): another process or task opening the same
/// store at once finishes its migrations first. Released on drop.
pub(crate) async fn open_lock(store: &Path) -> Result<File, StoreError> {
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = store.with_file_name(format!("{name}.open.lock"));
    let file = open_lock_file(&path)?;
    loop {
        match file.file().try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(TryLockError::Error(source)) => return Err(StoreError::LockFile { path, source }),
        }
    }
}

/// Opens (creating) a lock file, without truncating what it says.
fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| StoreError::LockFile {
            path: path.to_path_buf(),
            source,
        })
}

impl ProfileLock {
    /// Takes the lock of `profile` on `store` for `command` (e.g. `trader
    /// run`), at clock time `now` (epoch seconds).
    ///
    /// # Errors
    /// [`StoreError::Locked`] naming the holder when another live process
    /// holds it; [`StoreError::LockFile`] when the file cannot be opened.
    pub fn acquire(
        store: &Path,
        profile: &str,
        command: &str,
        now: i64,
    ) -> Result<Self, StoreError> {
        let path = lock_path(store, profile);
        let io = |source| StoreError::LockFile {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(io)?;
        }
        let mut file = open_lock_file(&path)?;
        match file.file().try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    store: store.to_path_buf(),
                    profile: profile.to_owned(),
                    holder: if holder.is_empty() {
                        "another process (starting)".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut before = String::new();
        file.read_to_string(&mut before).map_err(io)?;
        let before = before.trim().to_owned();
        let taken_over = (!before.is_empty()).then_some(before);
        if let Some(dead) = &taken_over {
            tracing::warn!(lock = %path.display(), holder = %dead, "taking over a lock whose holder is gone (killed?)");
        }
        let since = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let me = format!(
            "{command} (pid {} on {}, since {})",
            std::process::id(),
            host_name(),
            since.to_rfc3339()
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(ProfileLock {
            file,
            path,
            taken_over,
        })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The holder that died without releasing the lock, if any.
    #[must_use]
    pub fn taken_over(&self) -> Option<&str> {
        self.taken_over.as_deref()
    }
}

impl Drop for ProfileLock {
    fn drop(&mut self) {
        // Empty: released cleanly. The kernel drops the lock with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
