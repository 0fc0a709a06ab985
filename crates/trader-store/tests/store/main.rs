//! trader-store's integration tests, one binary: each module was its own test
//! binary, linked apart (issue 18).

mod import;
mod runs;
mod store;
mod versions;

/// The store a test's SQLite `path` stands for: the file, or a database of
/// its own on the PostgreSQL server of `TRADER_TEST_PG_URL` (CI runs these
/// tests on both).
pub(crate) async fn store_at(path: &std::path::Path) -> trader_core::StoreLocation {
    trader_store::scratch_location(path, trader_config::test_pg_url().as_deref())
        .await
        .unwrap_or_else(|e| panic!("the test's store: {e}"))
}

/// A connection pool of its own to the store at `location`, as `sqlite3` or
/// `psql` would open it.
pub(crate) async fn raw_pool(location: &trader_core::StoreLocation) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match location {
        trader_core::StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
        trader_core::StoreLocation::Postgres(url) => url.expose().to_owned(),
    };
    sqlx::AnyPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{location}: {e}"))
}
