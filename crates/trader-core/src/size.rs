//! Byte sizes: parsed once, here, from `"8.2GB"`, `"850MiB"`, `"1.25 GB"` or a bare
//! number of bytes; printed in the decimal units people use for RAM and VRAM.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes. Parses SI (`kB`, `MB`, `GB`, `TB`: powers of 1000) and IEC
/// (`KiB`, `MiB`, `GiB`, `TiB`: powers of 1024) units; `B` or no unit means bytes.
/// Zero and negative sizes are rejected: every size in a config is a real amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Why a size string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size {0:?} is empty")]
    Empty(String),
    #[error("size {0:?} is negative; sizes must be greater than zero")]
    Negative(String),
    #[error("size {0:?} is zero; sizes must be greater than zero")]
    Zero(String),
    #[error("size {input:?} has no number before the unit")]
    NoNumber { input: String },
    #[error(
        "size {input:?} has unknown unit {unit:?} (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)"
    )]
    UnknownUnit { input: String, unit: String },
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

const UNITS: &[(&str, f64)] = &[
    ("b", 1.0),
    ("kb", 1e3),
    ("k", 1e3),
    ("mb", 1e6),
    ("m", 1e6),
    ("gb", 1e9),
    ("g", 1e9),
    ("tb", 1e12),
    ("t", 1e12),
    ("kib", 1024.0),
    ("mib", 1_048_576.0),
    ("gib", 1_073_741_824.0),
    ("tib", 1_099_511_627_776.0),
];

impl ByteSize {
    /// Bytes as a float, for percentages and display.
    #[must_use]
    pub fn as_f64(self) -> f64 {
        self.0 as f64
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(SizeError::Empty(input.to_owned()));
        }
        if s.starts_with('-') {
            return Err(SizeError::Negative(input.to_owned()));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == '+'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: String = number.chars().filter(|c| *c != '_').collect();
        let value: f64 = number.parse().map_err(|_| SizeError::NoNumber {
            input: input.to_owned(),
        })?;
        let unit_lower = unit.trim().to_ascii_lowercase();
        let factor = if unit_lower.is_empty() {
            1.0
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit_lower)
                .map(|(_, f)| *f)
                .ok_or_else(|| SizeError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.trim().to_owned(),
                })?
        };
        let bytes = (value * factor).round();
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(SizeError::TooLarge(input.to_owned()));
        }
        if bytes <= 0.0 {
            return Err(SizeError::Zero(input.to_owned()));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Decimal units, three significant digits: `7.65 GB`, `850 MB`, `12.4 MB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.as_f64();
        let (value, unit) = if b >= 1e12 {
            (b / 1e12, "TB")
        } else if b >= 1e9 {
            (b / 1e9, "GB")
        } else if b >= 1e6 {
            (b / 1e6, "MB")
        } else if b >= 1e3 {
            (b / 1e3, "kB")
        } else {
            return write!(f, "{} B", self.0);
        };
        if value >= 100.0 {
            write!(f, "{value:.0} {unit}")
        } else if value >= 10.0 {
            write!(f, "{value:.1} {unit}")
        } else {
            write!(f, "{value:.2} {unit}")
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    /// Accepts a size string (`"850MiB"`) or a positive integer of bytes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) if n < 0 => {
                Err(serde::de::Error::custom(SizeError::Negative(n.to_string())))
            }
            Raw::Int(0) => Err(serde::de::Error::custom(SizeError::Zero("0".to_owned()))),
            Raw::Int(n) => Ok(ByteSize(n.unsigned_abs())),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_si_and_iec_units() {
        assert_eq!("8.2GB".parse::<ByteSize>().unwrap().0, 8_200_000_000);
        assert_eq!("850MB".parse::<ByteSize>().unwrap().0, 850_000_000);
        assert_eq!("850MiB".parse::<ByteSize>().unwrap().0, 850 * 1024 * 1024);
        assert_eq!("1.25 GB".parse::<ByteSize>().unwrap().0, 1_250_000_000);
        assert_eq!("24GiB".parse::<ByteSize>().unwrap().0, 24 << 30);
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert_eq!("2kb".parse::<ByteSize>().unwrap().0, 2000);
        assert_eq!("1_000 B".parse::<ByteSize>().unwrap().0, 1000);
    }

    #[test]
    fn rejects_bad_sizes_naming_the_input() {
        assert_eq!(
            "-1GB".parse::<ByteSize>(),
            Err(SizeError::Negative("-1GB".into()))
        );
        assert_eq!(
            "0MB".parse::<ByteSize>(),
            Err(SizeError::Zero("0MB".into()))
        );
        assert!(matches!(
            "8.2 GiBs".parse::<ByteSize>(),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "GB".parse::<ByteSize>(),
            Err(SizeError::NoNumber { .. })
        ));
        assert!(matches!("".parse::<ByteSize>(), Err(SizeError::Empty(_))));
        let msg = "lots".parse::<ByteSize>().unwrap_err().to_string();
        assert!(msg.contains("\"lots\""), "{msg}");
    }

    #[test]
    fn displays_decimal_units() {
        assert_eq!(ByteSize(7_650_000_000).to_string(), "7.65 GB");
        assert_eq!(ByteSize(850_000_000).to_string(), "850 MB");
        assert_eq!(ByteSize(12_345_678).to_string(), "12.3 MB");
        assert_eq!(ByteSize(999).to_string(), "999 B");
    }

    #[test]
    fn deserializes_strings_and_integers() {
        let s: ByteSize = serde_json::from_str("\"850MiB\"").unwrap();
        assert_eq!(s.0, 891_289_600);
        let n: ByteSize = serde_json::from_str("1024").unwrap();
        assert_eq!(n.0, 1024);
        assert!(serde_json::from_str::<ByteSize>("-5").is_err());
        assert!(serde_json::from_str::<ByteSize>("0").is_err());
    }
}
