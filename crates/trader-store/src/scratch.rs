//! Stores for tests: the same test on a SQLite file or, when CI names a
//! PostgreSQL server, on a database of its own.

use std::path::Path;

use sqlx::Connection;
use trader_core::StoreLocation;

use crate::StoreError;

/// The store a test's SQLite `path` stands for: the file itself, or, with
/// `pg_server` (a `postgres://` URL of a throwaway server), a database of
/// its own named after the path, created on first use. The same path gives
/// the same database, so a test that reopens its store finds what it wrote.
///
/// # Errors
/// The server refuses the connection or the database cannot be created.
pub async fn scratch_location(
    path: &Path,
    pg_server: Option<&str>,
) -> Result<StoreLocation, StoreError> {
    let Some(server) = pg_server else {
        return Ok(StoreLocation::Sqlite(path.to_path_buf()));
    };
    let open_err = |source| StoreError::Open {
        store: server.to_owned(),
        source,
    };
    let name = scratch_database_name(path);
    let with_db = |db: &str| with_database(server, db);
    let mut admin = sqlx::PgConnection::connect(&with_db("postgres"))
        .await
        .map_err(open_err)?;
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
    {
        // Made by an earlier open of the same path, or by another task of
        // the test opening it at this moment: it is there.
        let made = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&mut admin)
            .await
            .map_err(open_err)?
            .is_some();
        if !made {
            return Err(open_err(e));
        }
    }
    let _ = admin.close().await;
    StoreLocation::parse(&with_db(&name), Path::new(""))
        .map_err(|e| open_err(sqlx::Error::Configuration(e.to_string().into())))
}

/// The database [`scratch_location`] gives `path` on the server `server`.
#[must_use]
pub fn scratch_database_url(path: &Path, server: &str) -> String {
    with_database(server, &scratch_database_name(path))
}

/// FNV-1a of the path: a stable name per temp file, well under 63 bytes.
fn scratch_database_name(path: &Path) -> String {
    let hash = path
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    format!("t_{hash:016x}")
}

/// `server`'s URL with its database replaced by `db`.
fn with_database(server: &str, db: &str) -> String {
    let (base, params) = server.split_once('?').unwrap_or((server, ""));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    if params.is_empty() {
        format!("{root}/{db}")
    } else {
        format!("{root}/{db}?{params}")
    }
}
