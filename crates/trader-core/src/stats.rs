//! Small statistics shared by the reports: latency percentiles.

/// The value at quantile `q` (0..=1, clamped) of `sorted` by nearest rank:
/// index `round((len - 1) * q)`, no interpolation; None when empty. The one
/// percentile of `trader run`'s summary, backtests' resources and `trader
/// ensemble bench`.
#[must_use]
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let index = ((last as f64 * q.clamp(0.0, 1.0)).round() as usize).min(last);
    Some(sorted[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_rounds_the_index_and_is_none_when_empty() {
        let xs: Vec<u64> = (1..=101).collect();
        assert_eq!(nearest_rank(&xs, 0.5), Some(51));
        assert_eq!(nearest_rank(&xs, 0.99), Some(100));
        assert_eq!(nearest_rank(&xs, 1.0), Some(101));
        assert_eq!(nearest_rank(&xs, 0.0), Some(1));
        assert_eq!(nearest_rank(&[7.5], 0.99), Some(7.5));
        assert_eq!(nearest_rank::<u64>(&[], 0.5), None);
    }
}
