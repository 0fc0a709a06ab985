//! Ensemble versions and their adoptions: which ensemble a run decided
//! with, and when it swapped to another (live ensemble updates).
//!
//! A version is a short content hash of an ensemble; its members are
//! stored once (`ensemble_versions`), however often it is adopted. Each
//! adoption (a run's first ensemble, and every swap between hours) is a row
//! of `ensemble_adoptions`; a decision names its version in
//! `decisions.ensemble_version`.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One member of an ensemble version, in rank order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMember {
    pub name: String,
    pub rank: u32,
    pub score: f64,
}

/// A run adopting an ensemble version: at its start or at a swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleAdoption {
    /// Short content hash of the ensemble, e.g. `3f9a1c0b7d2e`.
    pub version: String,
    /// Rank order.
    pub members: Vec<VersionMember>,
    /// The version it replaced (None: the run's first).
    pub previous: Option<String>,
    /// Clock time, epoch seconds.
    pub adopted_at: i64,
    /// The last hour (bar open time) decided before the swap; None at start.
    pub after_hour: Option<i64>,
    /// How long the new ensemble took to load.
    pub load_ms: u64,
    /// The trader's RSS in bytes before and after the load, when known.
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

/// The ensemble a profile's trader decides with now, for `trader status`:
/// the newest adoption of the profile's newest run that has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentEnsemble {
    pub run_id: i64,
    pub version: String,
    /// Rank order.
    pub members: Vec<VersionMember>,
    /// Epoch seconds, like the other times of
    /// [`ProfileStatus`](crate::ProfileStatus).
    pub adopted_at: i64,
    /// Adoptions of that run, its first included.
    pub adoptions_in_run: u32,
}

impl EnsembleAdoption {
    /// Refuses what could not be read back as written: an empty version,
    /// no members, or a score that is not finite (JSON has no NaN).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let bad = |reason: String| {
            Err(StoreError::BadAdoption {
                version: self.version.clone(),
                reason,
            })
        };
        if self.version.trim().is_empty() {
            return bad("the version is empty".to_owned());
        }
        if self.members.is_empty() {
            return bad("it has no members".to_owned());
        }
        if let Some(m) = self.members.iter().find(|m| !m.score.is_finite()) {
            return bad(format!("member {} has score {}", m.name, m.score));
        }
        Ok(())
    }

    /// The members as stored in `ensemble_versions.members`.
    pub(crate) fn members_json(&self) -> String {
        serde_json::to_string(&self.members).unwrap_or_else(|_| "[]".to_owned())
    }

    /// The error for a version already stored with other members.
    pub(crate) fn members_differ(&self, stored: &[VersionMember]) -> StoreError {
        let names = |ms: &[VersionMember]| {
            ms.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        StoreError::BadAdoption {
            version: self.version.clone(),
            reason: format!(
                "the store already holds this version with other members ({}), not ({})",
                names(stored),
                names(&self.members)
            ),
        }
    }
}
