//! Trader profiles: `configs/full.toml`, `configs/lean.toml`, or any TOML file.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trader_core::{Aggregate, ComputeDevice, DType, StoreLocation, Symbol};

use crate::{ConfigError, check_range, read_toml};

/// Allowed `history_hours`: up to ten years of hourly bars.
pub const HISTORY_HOURS: RangeInclusive<u32> = 1..=87_600;
/// Allowed `poll_interval_secs`: bars are hourly, so at least once an hour.
pub const POLL_INTERVAL_SECS: RangeInclusive<u32> = 1..=3_600;
/// Allowed `bar_delay_secs`: up to five minutes after a close.
pub const BAR_DELAY_SECS: RangeInclusive<u32> = 0..=300;
/// Allowed `stale_after_hours`: up to a week.
pub const STALE_AFTER_HOURS: RangeInclusive<u32> = 1..=168;
/// Allowed `[ensemble] top_n`.
pub const TOP_N: RangeInclusive<u32> = 1..=1_000;
/// Allowed `[ensemble] min_hours_between_swaps`: up to a year.
pub const MIN_HOURS_BETWEEN_SWAPS: RangeInclusive<u32> = 0..=8_760;
/// Allowed `[ensemble] threads`.
pub const THREADS: RangeInclusive<u32> = 1..=1_024;

/// The `[ensemble]` table of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSettings {
    /// Ensemble directory (holds `ensemble_params.json`), relative to the profile file.
    pub dir: PathBuf,
    /// How many of the best-scored members to load.
    pub top_n: NonZeroU32,
    #[serde(default)]
    pub aggregate: Aggregate,
    #[serde(default = "default_dtype")]
    pub dtype: DType,
    #[serde(default = "default_device")]
    pub device: ComputeDevice,
    /// Inference threads (candle's rayon pool); 1 is fastest for one state vector.
    #[serde(default = "default_threads")]
    pub threads: NonZeroU32,
    /// Whether `trader run` adopts a new selection of the directory's members
    /// while it runs (`on-change`, the default) or keeps what it started with.
    #[serde(default)]
    pub reload: ReloadMode,
    /// Clock hours at least between two adoptions (the first counts from the
    /// start): 24 by default, "monitor 24 h before applying"; 0 adopts a new
    /// selection at the first hour boundary after it is loaded.
    #[serde(default = "default_min_hours_between_swaps")]
    pub min_hours_between_swaps: u32,
    /// A new selection is adopted only if its mean score beats the current
    /// one's by at least this much (None: any change is adopted).
    #[serde(default)]
    pub min_score_gain: Option<f64>,
}

/// `[ensemble] reload`: whether a running trader follows its directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReloadMode {
    /// Keep the ensemble loaded at start for the whole run.
    Off,
    /// Watch the directory (a file watch, a check at each poll, SIGHUP) and
    /// adopt a changed selection between hours when it passes the checks and
    /// the budget.
    #[default]
    OnChange,
}

/// How a profile follows its ensemble directory while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReloadSettings {
    pub mode: ReloadMode,
    pub min_hours_between_swaps: u32,
    pub min_score_gain: Option<f64>,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            mode: ReloadMode::OnChange,
            min_hours_between_swaps: default_min_hours_between_swaps(),
            min_score_gain: None,
        }
    }
}

/// When `trader run` polls for bars (see trader-engine's `schedule.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollScheduleKind {
    /// At each hour's close plus `bar_delay_secs`, retries while the bars
    /// are missing, a heartbeat every `poll_interval_secs` between hours.
    #[default]
    Aligned,
    /// Every `poll_interval_secs`, wherever the close falls (the old way).
    Fixed,
}

fn default_min_hours_between_swaps() -> u32 {
    24
}
fn default_bar_delay_secs() -> u32 {
    1
}
fn default_stale_after_hours() -> u32 {
    2
}

fn default_dtype() -> DType {
    DType::F32
}
fn default_device() -> ComputeDevice {
    ComputeDevice::Cpu
}
fn default_threads() -> NonZeroU32 {
    NonZeroU32::MIN
}

/// The `[store]` table of a profile: one of `path` or `url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// SQLite file, relative to the profile file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A shared store, `postgres://user@host:port/db` (a password here is
    /// read but never printed; prefer `TRADER_STORE_URL`).
    #[serde(default)]
    pub url: Option<String>,
}

impl StoreSettings {
    /// The store these settings name, paths relative to `base` (the
    /// profile's folder); the error names the profile file `path`.
    fn location(&self, path: &Path, base: &Path) -> Result<StoreLocation, ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        let one_of = "give one: path (a SQLite file) or url (postgres://)";
        match (&self.path, &self.url) {
            (Some(p), None) => Ok(StoreLocation::Sqlite(base.join(p))),
            (None, Some(url)) => StoreLocation::parse(url, base)
                .map_err(|e| invalid("store.url", e.shown.clone(), e.reason)),
            (Some(_), Some(_)) => Err(invalid("store", "path and url".to_owned(), one_of)),
            (None, None) => Err(invalid("store", "neither path nor url".to_owned(), one_of)),
        }
    }
}

/// The `[trading]` table: how actions become orders (DESIGN.md, Action).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingSettings {
    /// Largest weight of one symbol, as a fraction of equity (0..=1].
    #[serde(default = "default_max_weight")]
    pub max_weight: f64,
    /// Largest sum of weights (0..=1]: long-only, no leverage.
    #[serde(default = "default_max_gross")]
    pub max_gross: f64,
    /// Orders smaller than this many USD are skipped.
    #[serde(default = "default_min_trade_notional")]
    pub min_trade_notional: f64,
}

impl Default for TradingSettings {
    fn default() -> Self {
        TradingSettings {
            max_weight: default_max_weight(),
            max_gross: default_max_gross(),
            min_trade_notional: default_min_trade_notional(),
        }
    }
}

fn default_max_weight() -> f64 {
    0.3
}
fn default_max_gross() -> f64 {
    0.9
}
fn default_min_trade_notional() -> f64 {
    10.0
}

/// The `[metrics]` table: `/metrics` and `/healthz` on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
}

/// A profile file as written on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Symbols traded, in Alpaca's spelling.
    pub symbols: Vec<Symbol>,
    /// Hours of bars kept per symbol.
    pub history_hours: NonZeroU32,
    /// Seconds between polls for new bars (at most, on the aligned schedule).
    pub poll_interval_secs: NonZeroU32,
    /// `aligned` (default) or `fixed`.
    #[serde(default)]
    pub poll_schedule: PollScheduleKind,
    /// Aligned schedule: seconds after an hour's close of its first poll.
    #[serde(default = "default_bar_delay_secs")]
    pub bar_delay_secs: u32,
    /// The newest complete hour older than this many hours is an alarm.
    #[serde(default = "default_stale_after_hours")]
    pub stale_after_hours: u32,
    pub ensemble: EnsembleSettings,
    pub store: StoreSettings,
    #[serde(default)]
    pub trading: TradingSettings,
    #[serde(default)]
    pub metrics: Option<MetricsSettings>,
}

/// A loaded, validated profile with its paths resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// File stem (`lean` for `configs/lean.toml`).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub symbols: Vec<Symbol>,
    pub history_hours: u32,
    pub poll_interval_secs: u32,
    pub poll_schedule: PollScheduleKind,
    pub bar_delay_secs: u32,
    pub stale_after_hours: u32,
    pub ensemble_dir: PathBuf,
    pub top_n: u32,
    pub aggregate: Aggregate,
    pub dtype: DType,
    pub device: ComputeDevice,
    pub threads: u32,
    /// `[ensemble] reload`, `min_hours_between_swaps`, `min_score_gain`.
    pub reload: ReloadSettings,
    /// `[store] path` or `url` (`--store` and `TRADER_STORE_URL` override
    /// it: [`crate::resolve_store`]).
    pub store: StoreLocation,
    pub trading: TradingSettings,
    /// Port of `/metrics` and `/healthz`; `None`: no endpoint.
    pub metrics_port: Option<u16>,
}

/// `--profile` takes a name (`configs/NAME.toml`) or a path to a TOML file.
/// A value with a `/` or ending in `.toml` is a path; anything else is a name
/// looked up in `config_dir`.
#[must_use]
pub fn resolve_profile_path(profile: &str, config_dir: &Path) -> PathBuf {
    let is_toml = Path::new(profile)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if profile.contains(std::path::MAIN_SEPARATOR) || is_toml {
        PathBuf::from(profile)
    } else {
        config_dir.join(format!("{profile}.toml"))
    }
}

impl Profile {
    /// Loads `--profile` (a name in `config_dir` or a path).
    ///
    /// # Errors
    /// A missing profile, unreadable or invalid TOML, or a value that fails
    /// validation; each error names the file and the key.
    pub fn load(profile: &str, config_dir: &Path) -> Result<Self, ConfigError> {
        let path = resolve_profile_path(profile, config_dir);
        if path.is_dir() {
            return Err(ConfigError::IsDirectory { path });
        }
        if !path.is_file() {
            return Err(ConfigError::ProfileNotFound {
                name: profile.to_owned(),
                searched: path,
            });
        }
        Self::from_file(&path)
    }

    /// Loads a profile from a file.
    ///
    /// # Errors
    /// As [`Profile::load`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file: ProfileFile = read_toml(path)?;
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        if file.symbols.is_empty() {
            return Err(invalid(
                "symbols",
                "[]".into(),
                "at least one symbol is needed",
            ));
        }
        check_ranges(path, &file)?;
        let mut seen = BTreeSet::new();
        for s in &file.symbols {
            if !seen.insert(s) {
                return Err(invalid("symbols", format!("{s:?}"), "symbol listed twice"));
            }
        }
        if file.ensemble.dir.as_os_str().is_empty() {
            return Err(invalid(
                "ensemble.dir",
                "\"\"".into(),
                "must name a directory",
            ));
        }
        let t = &file.trading;
        for (key, v, lo_open) in [
            ("trading.max_weight", t.max_weight, true),
            ("trading.max_gross", t.max_gross, true),
        ] {
            if !(v.is_finite() && (v > 0.0 || !lo_open) && v <= 1.0) {
                return Err(invalid(key, v.to_string(), "must be in (0, 1]"));
            }
        }
        if !(t.min_trade_notional.is_finite() && t.min_trade_notional >= 0.0) {
            return Err(invalid(
                "trading.min_trade_notional",
                t.min_trade_notional.to_string(),
                "must be a non-negative number of USD",
            ));
        }
        if let Some(gain) = file.ensemble.min_score_gain
            && !(gain.is_finite() && gain >= 0.0)
        {
            return Err(invalid(
                "ensemble.min_score_gain",
                gain.to_string(),
                "must be a non-negative finite score difference",
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let store = file.store.location(path, base)?;
        let name = path.file_stem().map_or_else(
            || "profile".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        Ok(Profile {
            name,
            path: path.to_path_buf(),
            symbols: file.symbols,
            history_hours: file.history_hours.get(),
            poll_interval_secs: file.poll_interval_secs.get(),
            poll_schedule: file.poll_schedule,
            bar_delay_secs: file.bar_delay_secs,
            stale_after_hours: file.stale_after_hours,
            ensemble_dir: base.join(&file.ensemble.dir),
            top_n: file.ensemble.top_n.get(),
            aggregate: file.ensemble.aggregate,
            dtype: file.ensemble.dtype,
            device: file.ensemble.device,
            threads: file.ensemble.threads.get(),
            reload: ReloadSettings {
                mode: file.ensemble.reload,
                min_hours_between_swaps: file.ensemble.min_hours_between_swaps,
                min_score_gain: file.ensemble.min_score_gain,
            },
            store,
            trading: file.trading,
            metrics_port: file.metrics.map(|m| m.port),
        })
    }
}

/// Every numeric key of `file` against its allowed range.
fn check_ranges(path: &Path, file: &ProfileFile) -> Result<(), ConfigError> {
    for (key, value, range, unit) in [
        (
            "history_hours",
            file.history_hours.get(),
            HISTORY_HOURS,
            "hours; 87600 is ten years",
        ),
        (
            "poll_interval_secs",
            file.poll_interval_secs.get(),
            POLL_INTERVAL_SECS,
            "seconds; bars are hourly",
        ),
        (
            "bar_delay_secs",
            file.bar_delay_secs,
            BAR_DELAY_SECS,
            "seconds after the close",
        ),
        (
            "stale_after_hours",
            file.stale_after_hours,
            STALE_AFTER_HOURS,
            "hours; 168 is a week",
        ),
        (
            "ensemble.top_n",
            file.ensemble.top_n.get(),
            TOP_N,
            "members",
        ),
        (
            "ensemble.threads",
            file.ensemble.threads.get(),
            THREADS,
            "inference threads",
        ),
        (
            "ensemble.min_hours_between_swaps",
            file.ensemble.min_hours_between_swaps,
            MIN_HOURS_BETWEEN_SWAPS,
            "hours; 8760 is a year",
        ),
    ] {
        check_range(path, key, value, &range, unit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
symbols = ["BTC/USD", "ETH/USD"]
history_hours = 72
poll_interval_secs = 120

[ensemble]
dir = "../models/demo"
top_n = 5

[store]
path = "../var/lean.sqlite"
"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs_err::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_store_is_a_path_or_a_postgres_url_and_exactly_one() {
        let tmp = tempfile::tempdir().unwrap();
        let url = "postgres://trader:hunter2@db.lan:5432/trading";
        let with = |store: &str| GOOD.replace("path = \"../var/lean.sqlite\"", store);
        write(tmp.path(), "pg.toml", &with(&format!("url = \"{url}\"")));
        let p = Profile::load("pg", tmp.path()).unwrap();
        assert!(p.store.is_shared());
        assert!(!format!("{p:?} {}", p.store).contains("hunter2"));
        for (name, store, says) in [
            (
                "both",
                format!("path = \"x.sqlite\"\nurl = \"{url}\""),
                "path and url",
            ),
            ("neither", String::new(), "neither path nor url"),
            (
                "nodb",
                "url = \"postgres://trader:hunter2@db.lan:5432\"".to_owned(),
                "no database",
            ),
        ] {
            write(tmp.path(), &format!("{name}.toml"), &with(&store));
            let msg = Profile::load(name, tmp.path()).unwrap_err().to_string();
            assert!(
                msg.contains(says) && msg.contains(&format!("{name}.toml")),
                "{msg}"
            );
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn loads_by_name_and_resolves_paths_against_the_profile_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "lean.toml", GOOD);
        let p = Profile::load("lean", tmp.path()).unwrap();
        assert_eq!(p.name, "lean");
        assert_eq!(p.top_n, 5);
        assert_eq!(p.dtype, DType::F32);
        assert_eq!(p.threads, 1);
        assert_eq!(p.ensemble_dir, tmp.path().join("../models/demo"));
        // Unwritten: polls aligned to each close plus 1 s; stale after 2 h.
        assert_eq!(
            (p.poll_schedule, p.bar_delay_secs, p.stale_after_hours),
            (PollScheduleKind::Aligned, 1, 2)
        );
        write(
            tmp.path(),
            "old.toml",
            &GOOD.replace(
                "poll_interval_secs = 120",
                "poll_interval_secs = 120\npoll_schedule = \"fixed\"",
            ),
        );
        let p = Profile::load("old", tmp.path()).unwrap();
        assert_eq!(p.poll_schedule, PollScheduleKind::Fixed);
        // Unwritten: the directory is followed, at most one swap a day.
        assert_eq!(p.reload, ReloadSettings::default());
        assert_eq!(
            (p.reload.mode, p.reload.min_hours_between_swaps),
            (ReloadMode::OnChange, 24)
        );
        write(
            tmp.path(),
            "fixed.toml",
            &GOOD.replace(
                "top_n = 5",
                "top_n = 5\nreload = \"off\"\nmin_hours_between_swaps = 0\nmin_score_gain = 0.05",
            ),
        );
        let p = Profile::load("fixed", tmp.path()).unwrap();
        assert_eq!(
            p.reload,
            ReloadSettings {
                mode: ReloadMode::Off,
                min_hours_between_swaps: 0,
                min_score_gain: Some(0.05),
            }
        );
    }

    #[test]
    fn bad_reload_settings_are_named_with_the_file_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        for (to, want) in [
            ("top_n = 5\nreload = \"sometimes\"", "sometimes"),
            (
                "top_n = 5\nmin_hours_between_swaps = 8761",
                "`ensemble.min_hours_between_swaps` = 8761",
            ),
            (
                "top_n = 5\nmin_score_gain = -0.5",
                "`ensemble.min_score_gain` = -0.5",
            ),
            (
                "top_n = 5\nmin_score_gain = nan",
                "`ensemble.min_score_gain` = NaN",
            ),
        ] {
            let p = write(tmp.path(), "p.toml", &GOOD.replace("top_n = 5", to));
            let err = Profile::from_file(&p).unwrap_err().to_string();
            assert!(err.contains("p.toml") && err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn a_name_is_looked_up_and_a_path_is_taken_as_is() {
        let dir = Path::new("configs");
        assert_eq!(resolve_profile_path("lean", dir), dir.join("lean.toml"));
        assert_eq!(
            resolve_profile_path("x/y.toml", dir),
            PathBuf::from("x/y.toml")
        );
        assert_eq!(resolve_profile_path("y.toml", dir), PathBuf::from("y.toml"));
    }

    #[test]
    fn missing_profile_names_what_was_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Profile::load("nope", tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("nope.toml"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(
            tmp.path(),
            "p.toml",
            &GOOD.replace("top_n = 5", "top_n = 5\ntopn = 3"),
        );
        let err = Profile::from_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("unknown field `topn`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_and_zero_and_negative_values_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        for (from, to, expect) in [
            ("top_n = 5", "top_n = \"five\"", "top_n"),
            ("top_n = 5", "top_n = 0", "top_n"),
            ("history_hours = 72", "history_hours = -72", "history_hours"),
            (
                "dir = \"../models/demo\"",
                "dir = \"../models/demo\"\ndtype = \"f8\"",
                "f8",
            ),
            ("\"ETH/USD\"", "\"eth\"", "eth"),
            (
                "poll_interval_secs = 120",
                "poll_interval_secs = 120\npoll_schedule = \"sometimes\"",
                "sometimes",
            ),
        ] {
            let p = write(tmp.path(), "p.toml", &GOOD.replace(from, to));
            let err = Profile::from_file(&p).unwrap_err().to_string();
            assert!(
                err.contains("p.toml") && err.contains(expect),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn numeric_keys_out_of_range_name_the_file_the_key_and_the_allowed_range() {
        let tmp = tempfile::tempdir().unwrap();
        for (from, to, key, range) in [
            (
                "history_hours = 72",
                "history_hours = 4000000000",
                "`history_hours` = 4000000000",
                "1..=87600",
            ),
            (
                "history_hours = 72",
                "history_hours = 87601",
                "`history_hours` = 87601",
                "1..=87600",
            ),
            (
                "poll_interval_secs = 120",
                "poll_interval_secs = 4000000000",
                "`poll_interval_secs` = 4000000000",
                "1..=3600",
            ),
            (
                "poll_interval_secs = 120",
                "poll_interval_secs = 3601",
                "`poll_interval_secs` = 3601",
                "1..=3600",
            ),
            (
                "top_n = 5",
                "top_n = 4000000000",
                "`ensemble.top_n` = 4000000000",
                "1..=1000",
            ),
            (
                "top_n = 5",
                "top_n = 5\nthreads = 1025",
                "`ensemble.threads` = 1025",
                "1..=1024",
            ),
            (
                "poll_interval_secs = 120",
                "poll_interval_secs = 120\nbar_delay_secs = 301",
                "`bar_delay_secs` = 301",
                "0..=300",
            ),
            (
                "poll_interval_secs = 120",
                "poll_interval_secs = 120\nstale_after_hours = 0",
                "`stale_after_hours` = 0",
                "1..=168",
            ),
        ] {
            let p = write(tmp.path(), "p.toml", &GOOD.replace(from, to));
            let err = Profile::from_file(&p).unwrap_err().to_string();
            assert!(
                err.contains("p.toml") && err.contains(key) && err.contains(range),
                "{to}: {err}"
            );
        }
        // The bounds themselves are allowed.
        let text = GOOD
            .replace("history_hours = 72", "history_hours = 87600")
            .replace("poll_interval_secs = 120", "poll_interval_secs = 3600")
            .replace("top_n = 5", "top_n = 1000\nthreads = 1024");
        let p = write(tmp.path(), "p.toml", &text);
        let p = Profile::from_file(&p).unwrap();
        assert_eq!(
            (p.history_hours, p.poll_interval_secs, p.top_n, p.threads),
            (87_600, 3_600, 1_000, 1_024)
        );
    }

    #[test]
    fn a_profile_that_is_a_directory_is_called_a_directory_not_missing() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir(tmp.path().join("lean.toml")).unwrap();
        for name in ["lean", &tmp.path().join("lean.toml").display().to_string()] {
            let err = Profile::load(name, tmp.path()).unwrap_err().to_string();
            assert!(
                err.contains("lean.toml")
                    && err.contains("is a directory, not a TOML file")
                    && !err.contains("not found"),
                "{name}: {err}"
            );
        }
        let err = Profile::from_file(&tmp.path().join("lean.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory, not a TOML file"), "{err}");
    }

    #[test]
    fn duplicate_and_empty_symbols_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(
            tmp.path(),
            "p.toml",
            &GOOD.replace("\"ETH/USD\"", "\"BTC/USD\""),
        );
        let err = Profile::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("`symbols`") && err.contains("twice"), "{err}");
        let p = write(
            tmp.path(),
            "p.toml",
            &GOOD.replace("[\"BTC/USD\", \"ETH/USD\"]", "[]"),
        );
        let err = Profile::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("at least one symbol"), "{err}");
    }
}
