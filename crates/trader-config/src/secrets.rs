//! Alpaca keys, read from the environment only and never printed.

use std::fmt;

use crate::ConfigError;

/// A secret string whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the one place that sends it (an HTTP header).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The Alpaca key pair (`APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`).
#[derive(Debug, Clone)]
pub struct AlpacaKeys {
    pub key_id: Secret,
    pub secret_key: Secret,
}

impl AlpacaKeys {
    /// Reads both keys from the environment: `Ok(None)` when neither is set
    /// (the simulator is used), an error when only one is.
    ///
    /// # Errors
    /// [`ConfigError::HalfKeys`] when exactly one key is set.
    #[allow(clippy::disallowed_methods)] // this crate is the one reader of the environment
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let id = std::env::var("APCA_API_KEY_ID")
            .ok()
            .filter(|s| !s.is_empty());
        let secret = std::env::var("APCA_API_SECRET_KEY")
            .ok()
            .filter(|s| !s.is_empty());
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => Ok(Some(AlpacaKeys {
                key_id: Secret::new(id),
                secret_key: Secret::new(secret),
            })),
            (Some(_), None) => Err(ConfigError::HalfKeys {
                name: "APCA_API_KEY_ID",
                name_other: "APCA_API_SECRET_KEY",
            }),
            (None, Some(_)) => Err(ConfigError::HalfKeys {
                name: "APCA_API_SECRET_KEY",
                name_other: "APCA_API_KEY_ID",
            }),
        }
    }
}

/// A file of key pairs for the simulator's accounts:
/// `[[keys]]` tables with `key_id` and `secret_key`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key_id: String,
    secret_key: String,
}

impl AlpacaKeys {
    /// Reads every key pair of a key file (`[[keys]] key_id = "..", secret_key = ".."`).
    ///
    /// # Errors
    /// Unreadable or invalid TOML, or an empty key; the error names the file
    /// and never the secret.
    pub fn from_file(path: &std::path::Path) -> Result<Vec<Self>, ConfigError> {
        let file: KeyFile = crate::read_toml(path)?;
        file.keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                if k.key_id.is_empty() || k.secret_key.is_empty() {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key: format!("keys[{i}]"),
                        value: "\"\"".to_owned(),
                        reason: "key_id and secret_key must be non-empty".to_owned(),
                    });
                }
                Ok(AlpacaKeys {
                    key_id: Secret::new(k.key_id),
                    secret_key: Secret::new(k.secret_key),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let keys = AlpacaKeys {
            key_id: Secret::new("PKTESTKEY".into()),
            secret_key: Secret::new("supersecret".into()),
        };
        let shown = format!("{keys:?} {}", keys.secret_key);
        assert!(
            !shown.contains("PKTESTKEY") && !shown.contains("supersecret"),
            "{shown}"
        );
        assert_eq!(keys.key_id.expose(), "PKTESTKEY");
    }
}
