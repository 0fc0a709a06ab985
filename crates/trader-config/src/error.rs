use std::path::PathBuf;

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TOML in {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}` = {value}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{path} is a directory, not a TOML file")]
    IsDirectory { path: PathBuf },
    #[error("profile {name:?} not found (looked for {searched})")]
    ProfileNotFound { name: String, searched: PathBuf },
    #[error(
        "environment variable {name} is set but {name_other} is not: set both Alpaca keys or neither"
    )]
    HalfKeys {
        name: &'static str,
        name_other: &'static str,
    },
    #[error("environment variable {name} = {value:?}: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
}
