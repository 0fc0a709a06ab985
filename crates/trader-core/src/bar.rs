//! The compact in-memory bar and the rules every stored bar obeys.

use chrono::{DateTime, Utc};

/// Seconds in one bar.
pub const HOUR_SECS: i64 = 3600;

/// One hourly bar. `t` is the bar's start in seconds since the Unix epoch (UTC);
/// the bar is complete at `t + 3600`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub t: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// A bar that opened, peaked, bottomed and closed at `price`, volume 1
    /// (tests and fixtures).
    #[must_use]
    pub fn flat(t: i64, price: f64) -> Self {
        Bar {
            t,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 1.0,
        }
    }
}

/// Bytes one symbol-hour costs in the in-memory history window: one [`Bar`].
pub const HISTORY_BYTES_PER_SYMBOL_HOUR: u64 = std::mem::size_of::<Bar>() as u64;

/// Why a bar is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarError {
    #[error("bar at {t}: {field} is {value}, not a finite number")]
    NonFinite {
        t: String,
        field: &'static str,
        value: f64,
    },
    #[error("bar at {t}: {field} is {value}; prices must be positive")]
    NonPositive {
        t: String,
        field: &'static str,
        value: f64,
    },
    #[error("bar at {t}: high {high} is below max(open, close) = {max}")]
    HighTooLow { t: String, high: f64, max: f64 },
    #[error("bar at {t}: low {low} is above min(open, close) = {min}")]
    LowTooHigh { t: String, low: f64, min: f64 },
    #[error("bar at {t}: volume {volume} is negative")]
    NegativeVolume { t: String, volume: f64 },
    #[error("bar at {t}: the timestamp is not on the hour")]
    NotOnTheHour { t: String },
    #[error("bar at {t} is not closed yet (it closes at {closes}, now is {now})")]
    NotClosed {
        t: String,
        closes: String,
        now: String,
    },
}

/// RFC 3339 spelling of an epoch second, for messages.
#[must_use]
pub fn format_time(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(|| format!("epoch {t}"), |d| d.to_rfc3339())
}

/// The header of a recorded-data CSV (one file per symbol).
pub const RECORDED_CSV_HEADER: &str = "timestamp,open,high,low,close,volume";

impl Bar {
    /// Parses one data line of a recorded-data CSV
    /// (`2017-07-01T11:00:00Z,2505.56,2513.38,2495.12,2509.17,114.6`). For
    /// tests, examples and benchmarks; `trader data import` reads files with
    /// the csv crate and reports errors by file and line.
    ///
    /// # Errors
    /// A line without six fields, a timestamp that is not RFC 3339, or a
    /// number that does not parse; the message quotes the line.
    pub fn from_recorded_line(line: &str) -> Result<Self, String> {
        let f: Vec<&str> = line.trim_end().split(',').collect();
        let [t, open, high, low, close, volume] = f.as_slice() else {
            return Err(format!("{line:?}: expected 6 fields"));
        };
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|e| format!("{line:?}: {s:?}: {e}"))
        };
        Ok(Bar {
            t: DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("{line:?}: {e}"))?
                .timestamp(),
            open: num(open)?,
            high: num(high)?,
            low: num(low)?,
            close: num(close)?,
            volume: num(volume)?,
        })
    }

    /// The bar's start as a UTC time.
    #[must_use]
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.t, 0).unwrap_or_default()
    }

    /// Checks the rules of a stored bar: finite, positive prices, high/low
    /// bracketing open and close, non-negative volume, on the hour, closed by `now`.
    ///
    /// # Errors
    /// The first rule broken, naming the bar's time, the field and the value.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), BarError> {
        let t = || format_time(self.t);
        for (field, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
        ] {
            if !value.is_finite() {
                return Err(BarError::NonFinite {
                    t: t(),
                    field,
                    value,
                });
            }
        }
        for (field, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if value <= 0.0 {
                return Err(BarError::NonPositive {
                    t: t(),
                    field,
                    value,
                });
            }
        }
        let max = self.open.max(self.close);
        if self.high < max {
            return Err(BarError::HighTooLow {
                t: t(),
                high: self.high,
                max,
            });
        }
        let min = self.open.min(self.close);
        if self.low > min {
            return Err(BarError::LowTooHigh {
                t: t(),
                low: self.low,
                min,
            });
        }
        if self.volume < 0.0 {
            return Err(BarError::NegativeVolume {
                t: t(),
                volume: self.volume,
            });
        }
        if self.t.rem_euclid(HOUR_SECS) != 0 {
            return Err(BarError::NotOnTheHour { t: t() });
        }
        if self.t + HOUR_SECS > now.timestamp() {
            return Err(BarError::NotClosed {
                t: t(),
                closes: format_time(self.t + HOUR_SECS),
                now: now.to_rfc3339(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar() -> Bar {
        Bar {
            t: 1_500_000_400 - 1_500_000_400 % 3600,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 3.0,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_600_000_000, 0).unwrap()
    }

    #[test]
    fn recorded_lines_parse_and_bad_ones_are_quoted() {
        let b =
            Bar::from_recorded_line("2017-07-01T11:00:00Z,2505.56,2513.38,2495.12,2509.17,114.6")
                .unwrap();
        assert_eq!((b.t, b.open, b.volume), (1_498_906_800, 2505.56, 114.6));
        for bad in [
            "2017-07-01T11:00:00Z,1,2,3,4",
            "yesterday,1,1,1,1,1",
            "2017-07-01T11:00:00Z,1,x,1,1,1",
        ] {
            let err = Bar::from_recorded_line(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn a_good_bar_passes_and_each_rule_is_enforced() {
        assert_eq!(bar().validate(now()), Ok(()));
        let cases: Vec<(Bar, &str)> = vec![
            (
                Bar {
                    close: f64::NAN,
                    ..bar()
                },
                "close is NaN",
            ),
            (Bar { open: 0.0, ..bar() }, "open is 0"),
            (Bar { low: -1.0, ..bar() }, "low is -1"),
            (
                Bar {
                    high: 10.4,
                    ..bar()
                },
                "high 10.4 is below",
            ),
            (Bar { low: 10.1, ..bar() }, "low 10.1 is above"),
            (
                Bar {
                    volume: -0.5,
                    ..bar()
                },
                "volume -0.5 is negative",
            ),
            (
                Bar {
                    t: bar().t + 60,
                    ..bar()
                },
                "not on the hour",
            ),
        ];
        for (b, want) in cases {
            let err = b.validate(now()).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("2017-07-14"),
                "{want}: {err}"
            );
        }
        let open_bar = Bar {
            t: 1_600_000_000 - 1_600_000_000 % 3600,
            ..bar()
        };
        let err = open_bar.validate(now()).unwrap_err().to_string();
        assert!(err.contains("not closed yet"), "{err}");
    }
}
