//! Where a store lives: a SQLite file (the embedded default) or a
//! PostgreSQL database shared by several traders and hosts.
//!
//! A PostgreSQL URL may carry a password: it is kept whole for connecting
//! but every way of printing it (`Display`, `Debug`) shows it without the
//! password, so it never reaches a log, an error or a report.

use std::fmt;
use std::path::{Path, PathBuf};

/// A store: a SQLite file or a PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database, `postgres://user:password@host:port/db`.
    Postgres(DatabaseUrl),
}

/// A `postgres://` URL whose password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// A store text that is neither a path nor a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {shown:?}: {reason}")]
pub struct StoreLocationError {
    /// The text as given, with any password removed.
    pub shown: String,
    pub reason: &'static str,
}

impl StoreLocation {
    /// Reads a store as written in a profile, `--store` or
    /// `TRADER_STORE_URL`: `postgres://` or `postgresql://` is a database,
    /// `sqlite://PATH` or anything else a file, relative to `base`.
    ///
    /// # Errors
    /// An empty text, or a `postgres://` URL without a host or database.
    pub fn parse(text: &str, base: &Path) -> Result<Self, StoreLocationError> {
        let text = text.trim();
        let err = |reason| StoreLocationError {
            shown: redact(text),
            reason,
        };
        if text.is_empty() {
            return Err(err("empty: give a SQLite file or a postgres:// URL"));
        }
        if let Some(rest) = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
        {
            let after_auth = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let (host, db) = after_auth.split_once('/').unwrap_or((after_auth, ""));
            let db = db.split('?').next().unwrap_or_default();
            // A socket directory may stand in for the host (`?host=/path`).
            if host.is_empty() && !text.contains("host=") {
                return Err(err("no host: write postgres://user@host:port/database"));
            }
            if db.is_empty() {
                return Err(err(
                    "no database name: write postgres://user@host:port/database",
                ));
            }
            return Ok(StoreLocation::Postgres(DatabaseUrl(text.to_owned())));
        }
        if text.contains("://") && !text.starts_with("sqlite://") {
            return Err(err(
                "unknown scheme: a store is a SQLite file (a path or sqlite://PATH) or postgres://",
            ));
        }
        let path = Path::new(text.strip_prefix("sqlite://").unwrap_or(text));
        Ok(StoreLocation::Sqlite(base.join(path)))
    }

    /// The SQLite file, when this is one.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }

    /// Whether several hosts may share this store (PostgreSQL).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }
}

impl DatabaseUrl {
    /// The whole URL, password included: for connecting only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `scheme://user:SECRET@host/...` as `scheme://user:***@host/...`; a
/// `password=` parameter likewise.
fn redact(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme_end) = shown.find("://") {
        let auth_start = scheme_end + 3;
        if let Some(at) = shown[auth_start..].rfind('@') {
            let auth = &shown[auth_start..auth_start + at];
            if let Some(colon) = auth.find(':') {
                shown.replace_range(auth_start + colon + 1..auth_start + at, "***");
            }
        }
    }
    if let Some(p) = shown.find("password=") {
        let start = p + "password=".len();
        let end = shown[start..].find('&').map_or(shown.len(), |e| start + e);
        shown.replace_range(start..end, "***");
    }
    shown
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// Serialised as printed: a path, or the URL without its password.
impl serde::Serialize for StoreLocation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreLocation::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_a_sqlite_file_relative_to_the_base() {
        let base = Path::new("/etc/trader");
        assert_eq!(
            StoreLocation::parse("../var/lean.sqlite", base).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/etc/trader/../var/lean.sqlite"))
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///tmp/a.sqlite", base).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/tmp/a.sqlite"))
        );
    }

    #[test]
    fn a_postgres_url_never_prints_its_password() {
        let url = "postgres://trader:hunter2@db.lan:5432/trading?password=hunter2&sslmode=disable";
        let store = StoreLocation::parse(url, Path::new(".")).unwrap();
        assert!(store.is_shared());
        for shown in [format!("{store}"), format!("{store:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db.lan:5432/trading"), "{shown}");
        }
        let StoreLocation::Postgres(db) = &store else {
            panic!("{store:?}")
        };
        assert_eq!(db.expose(), url);
    }

    #[test]
    fn bad_store_texts_are_named_without_their_password() {
        for (text, reason) in [
            ("", "empty"),
            ("postgres://u:pw@host:5432/", "no database"),
            ("postgres://u:pw@/db", "no host"),
            ("mysql://u:pw@host/db", "unknown scheme"),
        ] {
            let err = StoreLocation::parse(text, Path::new(".")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(reason), "{text}: {msg}");
            assert!(!msg.contains("pw@"), "{msg}");
        }
        // A socket folder stands in for the host.
        assert!(StoreLocation::parse("postgres:///db?host=/tmp/pg", Path::new(".")).is_ok());
    }
}
