//! Which store a command uses: `--store`, else `TRADER_STORE_URL`, else
//! the profile's `[store]`.

use std::path::Path;

use trader_core::StoreLocation;

use crate::ConfigError;

/// The environment variable of a shared store's URL (it may hold a
/// password: it is never printed).
pub const STORE_URL_ENV: &str = "TRADER_STORE_URL";

/// The store a command of `profile_store`'s profile uses: `cli` (from
/// [`parse_store_arg`]), else `TRADER_STORE_URL`, else the profile's own.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `TRADER_STORE_URL` when it is neither a
/// path nor a valid `postgres://` URL.
pub fn resolve_store(
    cli: Option<&StoreLocation>,
    profile_store: &StoreLocation,
) -> Result<StoreLocation, ConfigError> {
    if let Some(given) = cli {
        return Ok(given.clone());
    }
    let Some(text) = store_url_from_env() else {
        return Ok(profile_store.clone());
    };
    StoreLocation::parse(&text, Path::new("")).map_err(|e| ConfigError::Invalid {
        path: STORE_URL_ENV.into(),
        key: STORE_URL_ENV.to_owned(),
        value: e.shown,
        reason: e.reason.to_owned(),
    })
}

/// `--store`'s parser: a SQLite file (relative to the working directory)
/// or a `postgres://` URL; the error names the text without its password.
///
/// # Errors
/// The text is neither.
pub fn parse_store_arg(text: &str) -> Result<StoreLocation, String> {
    StoreLocation::parse(text, Path::new("")).map_err(|e| e.to_string())
}

/// The variable `name`, when set and not blank.
#[allow(clippy::disallowed_methods)] // this crate is the one reader of the environment
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}

/// `TRADER_STORE_URL`, when set and not empty.
#[must_use]
pub fn store_url_from_env() -> Option<String> {
    non_empty_env(STORE_URL_ENV)
}

/// The environment variable naming a PostgreSQL server for the store and
/// engine tests (CI's throwaway cluster): set, they run on PostgreSQL.
pub const TEST_PG_URL_ENV: &str = "TRADER_TEST_PG_URL";

/// `TRADER_TEST_PG_URL`, when set and not empty (tests only).
#[must_use]
pub fn test_pg_url() -> Option<String> {
    non_empty_env(TEST_PG_URL_ENV)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_and_bad_urls_are_named_without_their_password() {
        let own = StoreLocation::Sqlite("/p/var/lean.sqlite".into());
        let given = parse_store_arg("x.sqlite").unwrap();
        assert_eq!(
            resolve_store(Some(&given), &own).unwrap(),
            StoreLocation::Sqlite("x.sqlite".into())
        );
        let msg = parse_store_arg("postgres://u:secret@h:5432").unwrap_err();
        assert!(msg.contains("no database"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }
}
