//! How two runs decided the same hours: the share of hours whose target
//! weights hold the same symbols, and the mean difference of the aggregated
//! actions (`trader compare`).

use std::collections::BTreeMap;

/// Per decided hour (its RFC 3339 time): the aggregated actions and the
/// target weights by symbol.
pub type Decisions = BTreeMap<String, (Vec<f64>, BTreeMap<String, f64>)>;

/// How two runs decided the same hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Hours both decided.
    pub hours: usize,
    /// Share of them whose target weights hold the same symbols (weight > 0
    /// or not, per symbol).
    pub same_way_share: f64,
    /// Mean absolute difference of the aggregated actions.
    pub mean_abs_action_difference: f64,
}

/// The agreement of two runs' decisions over the hours both decided.
#[must_use]
pub fn decision_agreement(a: &Decisions, b: &Decisions) -> Agreement {
    let mut hours = 0;
    let mut same = 0usize;
    let (mut diff, mut n) = (0.0, 0.0);
    for (t, (agg_a, w_a)) in a {
        let Some((agg_b, w_b)) = b.get(t) else {
            continue;
        };
        hours += 1;
        if w_a
            .iter()
            .all(|(s, x)| (*x > 0.0) == (w_b.get(s).copied().unwrap_or(0.0) > 0.0))
        {
            same += 1;
        }
        for (x, y) in agg_a.iter().zip(agg_b) {
            diff += (x - y).abs();
            n += 1.0;
        }
    }
    Agreement {
        hours,
        same_way_share: if hours > 0 {
            same as f64 / hours as f64
        } else {
            0.0
        },
        mean_abs_action_difference: if n > 0.0 { diff / n } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_hours_both_decided_and_compares_held_symbols_and_actions() {
        let d = |entries: &[(&str, f64, f64)]| -> Decisions {
            entries
                .iter()
                .map(|(t, action, weight)| {
                    (
                        (*t).to_owned(),
                        (
                            vec![*action],
                            BTreeMap::from([("BTC/USD".to_owned(), *weight)]),
                        ),
                    )
                })
                .collect()
        };
        let a = d(&[("h1", 0.5, 0.2), ("h2", 0.0, 0.0), ("h3", 1.0, 0.3)]);
        let b = d(&[("h1", 0.3, 0.1), ("h2", 0.2, 0.1), ("h4", 1.0, 0.3)]);
        let agree = decision_agreement(&a, &b);
        assert_eq!(agree.hours, 2, "h3 and h4 are one-sided");
        assert!(
            (agree.same_way_share - 0.5).abs() < 1e-12,
            "h1 both hold, h2 not"
        );
        assert!((agree.mean_abs_action_difference - 0.2).abs() < 1e-12);
        let none = decision_agreement(&a, &Decisions::new());
        assert_eq!((none.hours, none.same_way_share), (0, 0.0));
    }
}
