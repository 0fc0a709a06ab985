//! The host file: the machine's envelope, its co-tenants and alert thresholds.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use trader_core::ByteSize;

use crate::{ConfigError, check_range, read_toml};

/// Allowed `count` of one tenant kind.
pub const TENANT_COUNT: RangeInclusive<u32> = 0..=10_000;
/// Allowed `[alerts] check_interval_secs`: at least once an hour.
pub const CHECK_INTERVAL_SECS: RangeInclusive<u32> = 1..=3_600;

/// A machine total: probed (`"auto"`) or declared (`"8.2GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MemorySpec {
    Auto,
    Declared(ByteSize),
}

impl<'de> Deserialize<'de> for MemorySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Text(s) if s == "auto" => Ok(MemorySpec::Auto),
            Raw::Text(s) => s
                .parse::<ByteSize>()
                .map(MemorySpec::Declared)
                .map_err(|e| serde::de::Error::custom(format!("{e}, or \"auto\""))),
            Raw::Int(n) if n <= 0 => Err(serde::de::Error::custom(format!(
                "size {n} must be greater than zero, or \"auto\""
            ))),
            Raw::Int(n) => Ok(MemorySpec::Declared(ByteSize(n.unsigned_abs()))),
        }
    }
}

impl fmt::Display for MemorySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemorySpec::Auto => f.write_str("auto"),
            MemorySpec::Declared(s) => write!(f, "{s}"),
        }
    }
}

/// A process kind that shares the machine (`training-worker` x 9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    #[serde(default = "one")]
    pub count: u32,
    /// Resident memory of one process; omitted means none.
    pub ram: Option<ByteSize>,
    /// GPU memory of one process; omitted means none.
    pub vram: Option<ByteSize>,
}

fn one() -> u32 {
    1
}

/// How much of the machine all processes together may use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Percent of RAM all processes together may hold.
    pub ram_percent: f64,
    /// Percent of the card all processes together may hold.
    pub vram_percent: f64,
}

/// When the monitor raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// VRAM use above this percent of the card.
    pub vram_percent: f64,
    /// Any one process above this resident size.
    pub process_rss: ByteSize,
    pub check_interval_secs: NonZeroU32,
    /// The hard line of RAM, percent of the machine: `trader train`'s
    /// governor pauses workers above it (default: halfway from `[limits]
    /// ram_percent` to 100, [`AlertSettings::hard_ram_percent`]).
    #[serde(default)]
    pub ram_percent: Option<f64>,
    /// Trials per hour of `trader train` below this (over an hour) is an
    /// alert: too few workers. None: no such alert.
    #[serde(default)]
    pub min_trials_per_hour: Option<f64>,
}

impl AlertSettings {
    /// The hard line of RAM in percent ([`hard_ram_percent`] of this
    /// `ram_percent`).
    #[must_use]
    pub fn hard_ram_percent(&self, limit_percent: f64) -> f64 {
        hard_ram_percent(self.ram_percent, limit_percent)
    }
}

/// The hard line of RAM in percent: `[alerts] ram_percent` when written,
/// else halfway from `limit_percent` (the allowed share) to 100 (also
/// without a host file).
#[must_use]
pub fn hard_ram_percent(ram_percent: Option<f64>, limit_percent: f64) -> f64 {
    ram_percent.unwrap_or_else(|| limit_percent + (100.0 - limit_percent) / 2.0)
}

/// `configs/host.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub ram: MemorySpec,
    pub vram: MemorySpec,
    pub limits: LimitSettings,
    pub alerts: AlertSettings,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// The file it was read from (not a key of the file).
    #[serde(skip)]
    pub path: PathBuf,
}

impl HostConfig {
    /// Reads and validates a host file.
    ///
    /// # Errors
    /// Unreadable or invalid TOML, a percent outside (0, 100], a check interval
    /// outside [`CHECK_INTERVAL_SECS`], a tenant without a name, listed twice
    /// or with a count outside [`TENANT_COUNT`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let mut host: HostConfig = read_toml(path)?;
        host.path = path.to_path_buf();
        let invalid = |key: String, value: String, reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            value,
            reason: reason.to_owned(),
        };
        for (key, v) in [
            ("limits.ram_percent", host.limits.ram_percent),
            ("limits.vram_percent", host.limits.vram_percent),
            ("alerts.vram_percent", host.alerts.vram_percent),
            (
                "alerts.ram_percent",
                host.alerts.ram_percent.unwrap_or(100.0),
            ),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                return Err(invalid(key.into(), v.to_string(), "must be in (0, 100]"));
            }
        }
        if let Some(hard) = host.alerts.ram_percent
            && hard < host.limits.ram_percent
        {
            return Err(invalid(
                "alerts.ram_percent".into(),
                hard.to_string(),
                "the hard line must be at least [limits] ram_percent",
            ));
        }
        if let Some(rate) = host.alerts.min_trials_per_hour
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(invalid(
                "alerts.min_trials_per_hour".into(),
                rate.to_string(),
                "must be a non-negative number of trials",
            ));
        }
        check_range(
            path,
            "alerts.check_interval_secs",
            host.alerts.check_interval_secs.get(),
            &CHECK_INTERVAL_SECS,
            "seconds",
        )?;
        for (i, t) in host.tenants.iter().enumerate() {
            check_range(
                path,
                &format!("tenants[{i}].count"),
                t.count,
                &TENANT_COUNT,
                "processes",
            )?;
            if t.name.trim().is_empty() {
                return Err(invalid(
                    format!("tenants[{i}].name"),
                    format!("{:?}", t.name),
                    "a tenant needs a name",
                ));
            }
            if host.tenants[..i].iter().any(|o| o.name == t.name) {
                return Err(invalid(
                    format!("tenants[{i}].name"),
                    format!("{:?}", t.name),
                    "tenant listed twice; use `count`",
                ));
            }
        }
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
ram = "auto"
vram = "8.2GB"

[limits]
ram_percent = 90
vram_percent = 85

[alerts]
vram_percent = 85
process_rss = "1.5GB"
check_interval_secs = 300

[[tenants]]
name = "training-worker"
count = 9
ram = "1.25GB"
vram = "850MB"

[[tenants]]
name = "monitoring"
ram = "0.6GB"
"#;

    fn load(text: &str) -> Result<HostConfig, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("host.toml");
        fs_err::write(&p, text).unwrap();
        HostConfig::from_file(&p)
    }

    #[test]
    fn parses_the_users_box() {
        let h = load(GOOD).unwrap();
        assert_eq!(h.ram, MemorySpec::Auto);
        assert_eq!(h.vram, MemorySpec::Declared(ByteSize(8_200_000_000)));
        assert_eq!(h.tenants[0].count, 9);
        assert_eq!(h.tenants[0].vram, Some(ByteSize(850_000_000)));
        assert_eq!(h.tenants[1].count, 1);
        assert_eq!(h.tenants[1].vram, None);
        assert_eq!(h.alerts.process_rss, ByteSize(1_500_000_000));
        // Unwritten: the hard line halfway from the limit (90) to 100.
        assert!((h.alerts.hard_ram_percent(h.limits.ram_percent) - 95.0).abs() < 1e-9);
        assert_eq!(h.alerts.min_trials_per_hour, None);
        let h = load(&GOOD.replacen(
            "check_interval_secs = 300",
            "check_interval_secs = 300\nram_percent = 97\nmin_trials_per_hour = 35",
            1,
        ))
        .unwrap();
        assert!((h.alerts.hard_ram_percent(90.0) - 97.0).abs() < 1e-9);
        assert_eq!(h.alerts.min_trials_per_hour, Some(35.0));
    }

    #[test]
    fn bad_sizes_and_percents_name_file_key_and_value() {
        for (from, to, expect) in [
            ("vram = \"8.2GB\"", "vram = \"8.2 gigs\"", "\"8.2 gigs\""),
            ("vram = \"8.2GB\"", "vram = \"-8GB\"", "negative"),
            ("vram = \"8.2GB\"", "vram = 0", "greater than zero"),
            ("ram = \"1.25GB\"", "ram = \"0GB\"", "zero"),
            (
                "ram_percent = 90",
                "ram_percent = 190",
                "limits.ram_percent",
            ),
            ("count = 9", "count = -9", "count"),
            ("count = 9", "count = 9\ngpu = 1", "unknown field `gpu`"),
            (
                "check_interval_secs = 300",
                "check_interval_secs = 300\nram_percent = 80",
                "`alerts.ram_percent` = 80",
            ),
            (
                "check_interval_secs = 300",
                "check_interval_secs = 300\nram_percent = 101",
                "`alerts.ram_percent` = 101",
            ),
            (
                "check_interval_secs = 300",
                "check_interval_secs = 300\nmin_trials_per_hour = -1",
                "`alerts.min_trials_per_hour` = -1",
            ),
        ] {
            let err = load(&GOOD.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(
                err.contains("host.toml") && err.contains(expect),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn counts_and_intervals_out_of_range_name_the_file_the_key_and_the_allowed_range() {
        for (from, to, key, range) in [
            (
                "count = 9",
                "count = 4000000000",
                "`tenants[0].count` = 4000000000",
                "0..=10000",
            ),
            (
                "count = 9",
                "count = 10001",
                "`tenants[0].count` = 10001",
                "0..=10000",
            ),
            (
                "check_interval_secs = 300",
                "check_interval_secs = 4000000000",
                "`alerts.check_interval_secs` = 4000000000",
                "1..=3600",
            ),
        ] {
            let err = load(&GOOD.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(
                err.contains("host.toml") && err.contains(key) && err.contains(range),
                "{to}: {err}"
            );
        }
        let h = load(&GOOD.replacen("count = 9", "count = 10000", 1).replacen(
            "check_interval_secs = 300",
            "check_interval_secs = 3600",
            1,
        ))
        .unwrap();
        assert_eq!(
            (h.tenants[0].count, h.alerts.check_interval_secs.get()),
            (10_000, 3_600)
        );
    }

    #[test]
    fn a_host_file_that_is_a_directory_is_called_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let err = HostConfig::from_file(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory, not a TOML file"), "{err}");
    }

    #[test]
    fn duplicate_tenant_is_refused() {
        let text = format!("{GOOD}\n[[tenants]]\nname = \"monitoring\"\nram = \"1GB\"\n");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("tenants[2].name") && err.contains("twice"),
            "{err}"
        );
    }
}
