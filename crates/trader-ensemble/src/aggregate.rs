//! Combining the members' actions into one action per symbol.

use trader_core::Aggregate;

/// Aggregates `actions` (one row per member, one column per symbol).
/// Returns one value per symbol; an empty ensemble gives an empty vector.
#[must_use]
pub fn aggregate(actions: &[Vec<f32>], how: Aggregate) -> Vec<f32> {
    let Some(first) = actions.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|s| {
            let column: Vec<f32> = actions.iter().map(|row| row[s]).collect();
            match how {
                Aggregate::Mean => mean(&column),
                Aggregate::Median => median(column),
                Aggregate::Vote => vote(&column),
            }
        })
        .collect()
}

/// Mean accumulated in f64 in member order, so the result is deterministic.
fn mean(values: &[f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|v| f64::from(*v)).sum::<f64>() / values.len() as f64) as f32
}

fn median(mut values: Vec<f32>) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        mean(&values[n / 2 - 1..=n / 2])
    }
}

/// Majority of signs; the magnitude is the mean of the agreeing members.
/// Zeros vote for neither side; a tie gives 0.
fn vote(values: &[f32]) -> f32 {
    let up: Vec<f32> = values.iter().copied().filter(|v| *v > 0.0).collect();
    let down: Vec<f32> = values.iter().copied().filter(|v| *v < 0.0).collect();
    match up.len().cmp(&down.len()) {
        std::cmp::Ordering::Greater => mean(&up),
        std::cmp::Ordering::Less => mean(&down),
        std::cmp::Ordering::Equal => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<f32>> {
        vec![
            vec![0.5, -0.2],
            vec![0.1, -0.4],
            vec![-0.3, 0.6],
            vec![0.7, -0.1],
        ]
    }

    #[test]
    fn mean_median_and_vote_per_symbol() {
        let m = aggregate(&rows(), Aggregate::Mean);
        assert!(
            (m[0] - 0.25).abs() < 1e-7 && (m[1] - (-0.025)).abs() < 1e-7,
            "{m:?}"
        );
        let md = aggregate(&rows(), Aggregate::Median);
        assert!(
            (md[0] - 0.3).abs() < 1e-7 && (md[1] - (-0.15)).abs() < 1e-7,
            "{md:?}"
        );
        // symbol 0: 3 up (0.5, 0.1, 0.7) vs 1 down -> mean of the ups; symbol 1: 3 down.
        let v = aggregate(&rows(), Aggregate::Vote);
        assert!((v[0] - 13.0 / 30.0).abs() < 1e-6, "{v:?}");
        assert!((v[1] - (-0.7 / 3.0)).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn vote_tie_and_zeros_give_zero() {
        let v = aggregate(&[vec![0.5], vec![-0.5], vec![0.0]], Aggregate::Vote);
        assert_eq!(v, [0.0]);
        assert!(aggregate(&[], Aggregate::Mean).is_empty());
    }
}
