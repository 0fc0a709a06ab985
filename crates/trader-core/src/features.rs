//! The feature catalog (DESIGN.md, "Features") as pure functions over a
//! window of bars, and the market part of the state vector.
//!
//! Every feature reads a finite window that ends at and includes bar t, and
//! only that window, so any history at least as long as the required length
//! gives bit-identical values, live and in backtests. A missing hour inside a
//! feature's window makes the value unavailable: never computed over a gap.

use crate::bar::{Bar, HOUR_SECS, format_time};
use crate::feature::FeatureName;

/// Why features cannot be computed at a bar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("{need} hours of history are needed, only {have} are held")]
    TooShort { need: usize, have: usize },
    #[error("gap in the history: no bar between {before} and {after}")]
    Gap { before: String, after: String },
    #[error("symbols end at different hours ({first} vs {other})")]
    Misaligned { first: String, other: String },
}

fn tail(bars: &[Bar], n: usize) -> Result<&[Bar], Unavailable> {
    if bars.len() < n {
        return Err(Unavailable::TooShort {
            need: n,
            have: bars.len(),
        });
    }
    let w = &bars[bars.len() - n..];
    for pair in w.windows(2) {
        if pair[1].t - pair[0].t != HOUR_SECS {
            return Err(Unavailable::Gap {
                before: format_time(pair[0].t),
                after: format_time(pair[1].t),
            });
        }
    }
    Ok(w)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Whether every value is exactly the same (a flat window: zero-volume hours,
/// a halted market). Exact on purpose: such windows define the value as 0,
/// where the two-pass formula would leave a rounding residue.
#[allow(clippy::float_cmp)]
fn all_equal(values: &[f64]) -> bool {
    values.iter().all(|v| *v == values[0])
}

/// Population standard deviation; exactly 0 when all values are equal.
fn std_pop(values: &[f64]) -> f64 {
    if all_equal(values) {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    mean(values.iter().map(|v| (v - m) * (v - m))).sqrt()
}

fn sma_close(w: &[Bar], n: usize) -> f64 {
    mean(w[w.len() - n..].iter().map(|b| b.close))
}

/// The value of one feature at the last bar of `bars`.
///
/// # Errors
/// Fewer bars than the feature needs, or a missing hour inside its window.
pub fn feature_value(bars: &[Bar], feature: FeatureName) -> Result<f64, Unavailable> {
    let w = tail(bars, feature.bars_needed() as usize)?;
    let last = w[w.len() - 1];
    Ok(match feature {
        FeatureName::LogReturn => (last.close / w[0].close).ln(),
        FeatureName::CoReturn => (last.close / last.open).ln(),
        FeatureName::HlRange => (last.high - last.low) / last.close,
        FeatureName::VolumeZ24 => {
            let x: Vec<f64> = w.iter().map(|b| b.volume.ln_1p()).collect();
            let sd = std_pop(&x);
            if sd == 0.0 {
                0.0
            } else {
                (x[x.len() - 1] - mean(x.iter().copied())) / sd
            }
        }
        FeatureName::Rsi14 => {
            let changes: Vec<f64> = w.windows(2).map(|p| p[1].close - p[0].close).collect();
            let gain = mean(changes.iter().map(|d| d.max(0.0)));
            let loss = mean(changes.iter().map(|d| (-d).max(0.0)));
            let rsi = if loss == 0.0 {
                if gain > 0.0 { 100.0 } else { 50.0 }
            } else {
                100.0 - 100.0 / (1.0 + gain / loss)
            };
            (rsi - 50.0) / 50.0
        }
        FeatureName::MacdSma => (sma_close(w, 12) - sma_close(w, 26)) / last.close,
        FeatureName::BollB20 => {
            let closes: Vec<f64> = w.iter().map(|b| b.close).collect();
            let sd = std_pop(&closes);
            if sd == 0.0 {
                0.0
            } else {
                (last.close - mean(closes.iter().copied())) / (2.0 * sd)
            }
        }
        FeatureName::Cci20 => {
            let tp: Vec<f64> = w.iter().map(|b| (b.high + b.low + b.close) / 3.0).collect();
            let m = mean(tp.iter().copied());
            let md = if all_equal(&tp) {
                0.0
            } else {
                mean(tp.iter().map(|v| (v - m).abs()))
            };
            if md == 0.0 {
                0.0
            } else {
                (tp[tp.len() - 1] - m) / (0.015 * md) / 100.0
            }
        }
        FeatureName::SmaRatio30 => last.close / sma_close(w, 30) - 1.0,
        FeatureName::SmaRatio60 => last.close / sma_close(w, 60) - 1.0,
    })
}

/// The values of `features` at the last bar of `bars`, in the order given.
///
/// # Errors
/// As [`feature_value`], for the first feature that is unavailable.
pub fn feature_values(bars: &[Bar], features: &[FeatureName]) -> Result<Vec<f64>, Unavailable> {
    features.iter().map(|f| feature_value(bars, *f)).collect()
}

/// The market part of the state vector at the last bar of each window:
/// `x(t-L+1, s_1, f_1) .. x(t, s_S, f_F)`, lags oldest first, then symbols in
/// the order of `windows`, then features in the order given (DESIGN.md).
/// Every window must end at the same hour.
///
/// # Errors
/// A window too short for `lookback + longest feature - 1` hours, a gap inside
/// that span, or windows ending at different hours.
pub fn market_state(
    windows: &[&[Bar]],
    lookback: usize,
    features: &[FeatureName],
) -> Result<Vec<f32>, Unavailable> {
    check_windows(windows, lookback, features)?;
    let mut out = Vec::with_capacity(lookback * windows.len() * features.len());
    for lag in (0..lookback).rev() {
        for w in windows {
            let upto = &w[..w.len() - lag];
            for f in features {
                out.push(feature_value(upto, *f)? as f32);
            }
        }
    }
    Ok(out)
}

/// The newest lag of [`market_state`] alone: its last `S*F` values (the
/// features of each window's newest bar), after the same checks on the
/// windows, so it is available exactly when [`market_state`] is. The live
/// engine keeps the older lags from earlier hours (each bar's features are
/// computed once, when the bar is the newest) and asks only for these.
///
/// # Errors
/// As [`market_state`].
pub fn newest_lag(
    windows: &[&[Bar]],
    lookback: usize,
    features: &[FeatureName],
) -> Result<Vec<f32>, Unavailable> {
    check_windows(windows, lookback, features)?;
    let mut out = Vec::with_capacity(windows.len() * features.len());
    for w in windows {
        for f in features {
            out.push(feature_value(w, *f)? as f32);
        }
    }
    Ok(out)
}

/// The windows end at the same hour and each holds the `lookback + longest
/// feature - 1` contiguous hours the state needs.
fn check_windows(
    windows: &[&[Bar]],
    lookback: usize,
    features: &[FeatureName],
) -> Result<(), Unavailable> {
    if let Some(first) = windows.first().and_then(|w| w.last()) {
        for w in &windows[1..] {
            let end = w.last().map_or(i64::MIN, |b| b.t);
            if end != first.t {
                return Err(Unavailable::Misaligned {
                    first: format_time(first.t),
                    other: format_time(end),
                });
            }
        }
    }
    let span = crate::required_history_hours(lookback as u32, features) as usize;
    for w in windows {
        tail(w, span)?;
    }
    Ok(())
}

/// [`feature_value`] over one whole series, memoised: the value at bar `j`
/// is `feature_value(&series[..=j], feature)`, computed once and reused by
/// every lag, hour and input spec that asks for it (backtests).
pub struct SeriesFeatures<'a> {
    series: &'a [Bar],
    memo: std::collections::HashMap<(FeatureName, usize), Result<f64, Unavailable>>,
}

impl<'a> SeriesFeatures<'a> {
    #[must_use]
    pub fn new(series: &'a [Bar]) -> Self {
        SeriesFeatures {
            series,
            memo: std::collections::HashMap::new(),
        }
    }

    /// The series.
    #[must_use]
    pub fn series(&self) -> &'a [Bar] {
        self.series
    }

    /// `feature_value(&series[..=j], feature)`, memoised.
    ///
    /// # Errors
    /// As [`feature_value`]; `j` outside the series is `TooShort`.
    pub fn value(&mut self, j: usize, feature: FeatureName) -> Result<f64, Unavailable> {
        let series = self.series;
        if j >= series.len() {
            return Err(Unavailable::TooShort {
                need: j + 1,
                have: series.len(),
            });
        }
        self.memo
            .entry((feature, j))
            .or_insert_with(|| feature_value(&series[..=j], feature))
            .clone()
    }
}

/// [`market_state`] of the windows `picks` = (index into `series`, last
/// bar), each holding everything before its last bar, from memoised
/// features: the
/// same values (each feature reads only the tail of its window), computed
/// once per bar instead of once per lag and hour.
///
/// # Errors
/// As [`market_state`].
pub fn market_state_memo(
    series: &mut [SeriesFeatures<'_>],
    picks: &[(usize, usize)],
    lookback: usize,
    features: &[FeatureName],
) -> Result<Vec<f32>, Unavailable> {
    let windows: Vec<&[Bar]> = picks
        .iter()
        .map(|&(k, end)| {
            let s = series[k].series();
            &s[..(end + 1).min(s.len())]
        })
        .collect();
    check_windows(&windows, lookback, features)?;
    let mut out = Vec::with_capacity(lookback * windows.len() * features.len());
    for lag in (0..lookback).rev() {
        for &(k, end) in picks {
            for f in features {
                out.push(series[k].value(end - lag, *f)? as f32);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::float_cmp, clippy::cast_possible_wrap)] // exact values are the point here
mod tests {
    use super::*;

    fn bars(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|i| {
                let c = 100.0 + (i as f64 * 0.7).sin() * 5.0 + i as f64 * 0.1;
                Bar {
                    t: 1_500_000_000 - 1_500_000_000 % 3600 + i as i64 * 3600,
                    open: c - 0.3,
                    high: c + 1.0,
                    low: c - 1.2,
                    close: c,
                    volume: 10.0 + (i % 7) as f64,
                }
            })
            .collect()
    }

    #[test]
    fn any_window_at_least_the_required_length_gives_identical_bits() {
        let b = bars(200);
        for f in FeatureName::ALL {
            let need = f.bars_needed() as usize;
            let short = feature_value(&b[200 - need..], f).unwrap();
            let long = feature_value(&b, f).unwrap();
            assert_eq!(short.to_bits(), long.to_bits(), "{f}");
            assert!(short.is_finite(), "{f}");
        }
    }

    #[test]
    fn a_gap_inside_the_window_makes_the_feature_unavailable() {
        let mut b = bars(100);
        b.remove(80); // the hour 80 is missing
        assert!(matches!(
            feature_value(&b, FeatureName::SmaRatio30),
            Err(Unavailable::Gap { .. })
        ));
        // log_return needs only the last 2 bars, which are contiguous.
        assert!(feature_value(&b, FeatureName::LogReturn).is_ok());
        assert!(matches!(
            feature_value(&b[..10], FeatureName::SmaRatio60),
            Err(Unavailable::TooShort { need: 60, have: 10 })
        ));
    }

    #[test]
    fn flat_windows_give_zero_not_nan() {
        let mut b = bars(60);
        for x in &mut b {
            (x.open, x.high, x.low, x.close, x.volume) = (5.0, 5.0, 5.0, 5.0, 0.0);
        }
        for f in FeatureName::ALL {
            let v = feature_value(&b, f).unwrap();
            assert_eq!(v, 0.0, "{f}");
        }
    }

    #[test]
    fn rsi_extremes_follow_cutler() {
        let mut up = bars(15);
        for (i, x) in up.iter_mut().enumerate() {
            x.close = 10.0 + i as f64;
        }
        assert_eq!(feature_value(&up, FeatureName::Rsi14).unwrap(), 1.0);
        for x in &mut up {
            x.close = 10.0;
        }
        assert_eq!(feature_value(&up, FeatureName::Rsi14).unwrap(), 0.0);
    }

    #[test]
    fn market_state_is_lag_major_then_symbol_then_feature() {
        let a = bars(100);
        let mut b = bars(100);
        for x in &mut b {
            x.close *= 2.0;
            x.open *= 2.0;
            x.high *= 2.0;
            x.low *= 2.0;
        }
        let feats = [FeatureName::LogReturn, FeatureName::HlRange];
        let s = market_state(&[&a, &b], 3, &feats).unwrap();
        assert_eq!(s.len(), 3 * 2 * 2);
        // Oldest lag first: entry 0 is log_return of symbol a at t-2.
        assert_eq!(
            s[0],
            feature_value(&a[..98], FeatureName::LogReturn).unwrap() as f32
        );
        // Last entry: hl_range of symbol b at t.
        assert_eq!(
            s[11],
            feature_value(&b, FeatureName::HlRange).unwrap() as f32
        );
        assert!(matches!(
            market_state(&[&a, &b[..99]], 3, &feats),
            Err(Unavailable::Misaligned { .. })
        ));
    }

    #[test]
    fn memoised_market_state_equals_the_plain_one_with_gaps() {
        let mut a = bars(200);
        let b = bars(200);
        a.remove(120); // a gap in the first symbol
        let features = FeatureName::ALL;
        let mut memo = [SeriesFeatures::new(&a), SeriesFeatures::new(&b)];
        let (mut same, mut unavailable) = (0, 0);
        for end_b in 0..b.len() {
            let t = b[end_b].t;
            let Ok(end_a) = a.binary_search_by_key(&t, |x| x.t) else {
                continue;
            };
            let windows = [&a[..=end_a], &b[..=end_b]];
            let plain = market_state(&windows, 6, &features);
            let cached = market_state_memo(&mut memo, &[(0, end_a), (1, end_b)], 6, &features);
            assert_eq!(plain, cached, "hour {t}");
            if plain.is_ok() {
                same += 1;
            } else {
                unavailable += 1;
            }
        }
        assert!(
            same > 50 && unavailable > 60,
            "{same} available, {unavailable} not"
        );
    }
}
