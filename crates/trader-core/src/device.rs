//! Numeric precision of the weights and the device that runs them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Precision the ensemble's weights are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    Bf16,
}

impl DType {
    /// Bytes per parameter.
    #[must_use]
    pub fn size_in_bytes(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }

    /// The name used in profiles and flags.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    Cpu,
    Cuda,
}

impl ComputeDevice {
    /// The name used in profiles and flags.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeDevice::Cpu => "cpu",
            ComputeDevice::Cuda => "cuda",
        }
    }
}

/// How the members' actions are combined into one (DESIGN.md, "Action").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean of the members' actions.
    #[default]
    Mean,
    /// Median (mean of the two middle values for an even count).
    Median,
    /// Majority of signs; magnitude = mean of the agreeing members; a tie is 0.
    Vote,
}

impl FromStr for Aggregate {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(Aggregate::Mean),
            "median" => Ok(Aggregate::Median),
            "vote" => Ok(Aggregate::Vote),
            _ => Err(ParseChoiceError {
                what: "aggregate",
                value: s.to_owned(),
                expected: "mean, median, vote",
            }),
        }
    }
}

/// A value that is not one of the allowed choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (expected one of: {expected})")]
pub struct ParseChoiceError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for DType {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::Bf16),
            _ => Err(ParseChoiceError {
                what: "dtype",
                value: s.to_owned(),
                expected: "f32, f16, bf16",
            }),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda),
            _ => Err(ParseChoiceError {
                what: "device",
                value: s.to_owned(),
                expected: "cpu, cuda",
            }),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
