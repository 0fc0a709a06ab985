//! The feature catalog's names and the history each feature needs.
//!
//! The computations arrive with the history-store issue; the names and window
//! lengths are needed now, to check that a model's lookback fits a profile's
//! `history_hours`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One feature of the catalog in DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeatureName {
    LogReturn,
    CoReturn,
    HlRange,
    VolumeZ24,
    Rsi14,
    MacdSma,
    BollB20,
    Cci20,
    SmaRatio30,
    SmaRatio60,
}

/// A feature name that the catalog does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature {0:?} (the catalog has: {list})", list = FeatureName::catalog_list())]
pub struct UnknownFeature(pub String);

impl FeatureName {
    /// Every feature of the catalog, in catalog order.
    pub const ALL: [FeatureName; 10] = [
        FeatureName::LogReturn,
        FeatureName::CoReturn,
        FeatureName::HlRange,
        FeatureName::VolumeZ24,
        FeatureName::Rsi14,
        FeatureName::MacdSma,
        FeatureName::BollB20,
        FeatureName::Cci20,
        FeatureName::SmaRatio30,
        FeatureName::SmaRatio60,
    ];

    /// The name used in params.json.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureName::LogReturn => "log_return",
            FeatureName::CoReturn => "co_return",
            FeatureName::HlRange => "hl_range",
            FeatureName::VolumeZ24 => "volume_z_24",
            FeatureName::Rsi14 => "rsi_14",
            FeatureName::MacdSma => "macd_sma",
            FeatureName::BollB20 => "boll_b_20",
            FeatureName::Cci20 => "cci_20",
            FeatureName::SmaRatio30 => "sma_ratio_30",
            FeatureName::SmaRatio60 => "sma_ratio_60",
        }
    }

    /// Bars (hours) of history one value of this feature needs, bar t included.
    #[must_use]
    pub fn bars_needed(self) -> u32 {
        match self {
            FeatureName::LogReturn => 2,
            FeatureName::CoReturn | FeatureName::HlRange => 1,
            FeatureName::VolumeZ24 => 24,
            FeatureName::Rsi14 => 15,
            FeatureName::MacdSma => 26,
            FeatureName::BollB20 | FeatureName::Cci20 => 20,
            FeatureName::SmaRatio30 => 30,
            FeatureName::SmaRatio60 => 60,
        }
    }

    fn catalog_list() -> String {
        FeatureName::ALL
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for FeatureName {
    type Err = UnknownFeature;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeatureName::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFeature(s.to_owned()))
    }
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FeatureName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FeatureName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hours of history a model with this lookback and these features needs:
/// `lookback + max(bars needed) - 1` (DESIGN.md).
#[must_use]
pub fn required_history_hours(lookback: u32, features: &[FeatureName]) -> u32 {
    let longest = features.iter().map(|f| f.bars_needed()).max().unwrap_or(1);
    lookback + longest - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_history_matches_design_examples() {
        assert_eq!(required_history_hours(24, &FeatureName::ALL), 83);
        assert_eq!(required_history_hours(12, &FeatureName::ALL), 71);
        assert_eq!(
            required_history_hours(24, &[FeatureName::LogReturn, FeatureName::Rsi14]),
            38
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for f in FeatureName::ALL {
            assert_eq!(f.as_str().parse::<FeatureName>().unwrap(), f);
        }
        let err = "rsi_15".parse::<FeatureName>().unwrap_err().to_string();
        assert!(err.contains("rsi_15") && err.contains("rsi_14"), "{err}");
    }
}
