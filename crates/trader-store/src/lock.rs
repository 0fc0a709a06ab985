//! One trader per store and profile, held for the life of the run: beside a
//! SQLite store an exclusive OS lock on the file `STORE.PROFILE.lock`; on a
//! PostgreSQL store a session advisory lock on the profile's name, held by a
//! connection of its own (the server releases it when that connection ends,
//! however the holder ends; the table `profile_locks` says who holds it).
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

use sqlx::Connection;
use trader_core::StoreLocation;

use crate::StoreError;

/// An exclusive lock on (store, profile); released on drop.
#[derive(Debug)]
pub struct ProfileLock {
    held: Held,
    /// Who held it before, when that holder died without releasing it.
    taken_over: Option<String>,
}

#[derive(Debug)]
enum Held {
    File(HeldFile),
    Advisory {
        conn: sqlx::PgConnection,
        profile: String,
        shown: String,
    },
}

/// A locked file, emptied and unlocked on drop.
#[derive(Debug)]
struct HeldFile {
    file: File,
    path: PathBuf,
}

/// The advisory lock of a profile: a 64-bit hash of its name, computed by
/// the server (`hashtextextended`), apart from the store's write lock.
const ADVISORY_KEY_SQL: &str = "hashtextextended('trader profile ' || $1, 0)";

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

/// This machine's name, as lock holders and training hosts name it.
#[must_use]
pub fn host_name() -> String {
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
    /// run`), at clock time `now` (epoch seconds): the file lock beside a
    /// SQLite store, the advisory lock on PostgreSQL.
    ///
    /// # Errors
    /// [`StoreError::Locked`] naming the holder when another live process
    /// holds it; [`StoreError::LockFile`] when the file cannot be opened;
    /// [`StoreError::Open`] or [`StoreError::Query`] when the database
    /// refuses.
    pub async fn acquire(
        store: &StoreLocation,
        profile: &str,
        command: &str,
        now: i64,
    ) -> Result<Self, StoreError> {
        match store {
            StoreLocation::Sqlite(path) => Self::acquire_file(path, profile, command, now),
            StoreLocation::Postgres(url) => {
                Self::acquire_advisory(store, url, profile, command, now).await
            }
        }
    }

    async fn acquire_advisory(
        store: &StoreLocation,
        url: &trader_core::DatabaseUrl,
        profile: &str,
        command: &str,
        now: i64,
    ) -> Result<Self, StoreError> {
        let query_err = |what| {
            move |source| StoreError::Query {
                store: store.to_string(),
                what,
                source,
            }
        };
        // The store's tables (profile_locks) exist before the lock is asked.
        crate::Store::open(store, None).await?.close().await;
        let mut conn = sqlx::PgConnection::connect(url.expose())
            .await
            .map_err(|source| StoreError::Open {
                store: store.to_string(),
                source,
            })?;
        let got: bool =
            sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({ADVISORY_KEY_SQL})"))
                .bind(profile)
                .fetch_one(&mut conn)
                .await
                .map_err(query_err("taking the profile's advisory lock"))?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT holder FROM profile_locks WHERE profile = $1")
                .bind(profile)
                .fetch_optional(&mut conn)
                .await
                .map_err(query_err("reading the profile's lock holder"))?;
        if !got {
            return Err(StoreError::Locked {
                store: store.to_string(),
                profile: profile.to_owned(),
                holder: holder.unwrap_or_else(|| "another process (starting)".to_owned()),
            });
        }
        if let Some(dead) = &holder {
            tracing::warn!(store = %store, profile, holder = %dead, "taking over a lock whose holder is gone (killed?)");
        }
        sqlx::query(
            "INSERT INTO profile_locks (profile, holder) VALUES ($1, $2) \
             ON CONFLICT (profile) DO UPDATE SET holder = excluded.holder",
        )
        .bind(profile)
        .bind(holder_text(command, now))
        .execute(&mut conn)
        .await
        .map_err(query_err("recording the profile's lock holder"))?;
        Ok(ProfileLock {
            held: Held::Advisory {
                conn,
                profile: profile.to_owned(),
                shown: format!("advisory lock of profile {profile} on {store}"),
            },
            taken_over: holder,
        })
    }

    /// Releases the lock now: on PostgreSQL also clears the holder's row,
    /// so that the next trader does not take it for a dead one's.
    pub async fn release(self) {
        if let Held::Advisory {
            mut conn, profile, ..
        } = self.held
        {
            let _ = sqlx::query("DELETE FROM profile_locks WHERE profile = $1")
                .bind(&profile)
                .execute(&mut conn)
                .await;
            let _ = sqlx::query(&format!("SELECT pg_advisory_unlock({ADVISORY_KEY_SQL})"))
                .bind(&profile)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    /// The SQLite store's file lock (see [`ProfileLock::acquire`]).
    ///
    /// # Errors
    /// As [`ProfileLock::acquire`].
    pub fn acquire_file(
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
                    store: store.display().to_string(),
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
        let me = holder_text(command, now);
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(ProfileLock {
            held: Held::File(HeldFile { file, path }),
            taken_over,
        })
    }

    /// The lock, as a log line names it: its file, or the advisory lock.
    #[must_use]
    pub fn shown(&self) -> String {
        match &self.held {
            Held::File(held) => held.path.display().to_string(),
            Held::Advisory { shown, .. } => shown.clone(),
        }
    }

    /// The holder that died without releasing the lock, if any.
    #[must_use]
    pub fn taken_over(&self) -> Option<&str> {
        self.taken_over.as_deref()
    }
}

/// What a lock says of its holder: command, pid, host, since when.
fn holder_text(command: &str, now: i64) -> String {
    let since = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    format!(
        "{command} (pid {} on {}, since {})",
        std::process::id(),
        host_name(),
        since.to_rfc3339()
    )
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        // Empty: released cleanly. The kernel drops the lock with the file.
        // (An advisory lock ends with its connection.)
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
