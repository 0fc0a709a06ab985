use std::path::PathBuf;

use trader_core::{BarError, Symbol};

/// Errors of the history store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening store {store}")]
    Open {
        store: String,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed, or the database was migrated by a newer
    /// `trader` (a version this one does not know).
    #[error("migrating store {store}")]
    Migrate {
        store: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("store {store}: {what}")]
    Query {
        store: String,
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{symbol}: a bad bar, nothing of this batch was stored")]
    BadBar {
        symbol: Symbol,
        #[source]
        source: BarError,
    },
    /// A batch of an import failed: the file it came from, around why.
    #[error("importing {path}")]
    Import {
        path: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    #[error("store {store}: symbol {value:?} in the bars table is not a valid symbol")]
    BadSymbol { store: String, value: String },
    #[error(
        "store {store} is in use by {holder}: one trader per store and profile {profile}; stop it first, or give this one another --store"
    )]
    Locked {
        store: String,
        profile: String,
        holder: String,
    },
    /// An ensemble adoption that cannot be stored as given; nothing of it
    /// was written.
    #[error("ensemble version {version:?} not recorded: {reason}")]
    BadAdoption { version: String, reason: String },
    /// A shared search (`trader train --queue`) that cannot go on as asked.
    #[error("trial queue on {store}: {reason}")]
    Queue { store: String, reason: String },
    #[error("lock file {path}")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
