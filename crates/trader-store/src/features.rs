//! `trader data features` without its command line: the catalog's features
//! of one symbol at one stored bar. The arithmetic is trader-core's
//! ([`trader_core::feature_value`]); this reads the window it needs.

use trader_core::{Bar, FeatureName, Symbol, Unavailable, feature_value};

use crate::{Store, StoreError};

/// Every catalog feature at one bar, in [`FeatureName::ALL`] order: its
/// value, or why it is unavailable there.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturesAt {
    pub values: Vec<(FeatureName, Result<f64, Unavailable>)>,
}

impl FeaturesAt {
    /// Every catalog feature at the last bar of `bars` (oldest first).
    #[must_use]
    pub fn of(bars: &[Bar]) -> Self {
        FeaturesAt {
            values: FeatureName::ALL
                .iter()
                .map(|f| (*f, feature_value(bars, *f)))
                .collect(),
        }
    }
}

impl Store {
    /// Every catalog feature of `symbol` at the bar starting at `at` (epoch
    /// seconds), from the bars stored up to it; `None` when the store has no
    /// bar of `symbol` at exactly `at`.
    ///
    /// # Errors
    /// A database error reading the bars.
    pub async fn features_at(
        &self,
        symbol: &Symbol,
        at: i64,
    ) -> Result<Option<FeaturesAt>, StoreError> {
        let longest = FeatureName::ALL
            .iter()
            .map(|f| f.bars_needed())
            .max()
            .unwrap_or(1);
        let bars = self.latest_bars(symbol, longest, Some(at)).await?;
        if bars.last().map(|b| b.t) != Some(at) {
            return Ok(None);
        }
        Ok(Some(FeaturesAt::of(&bars)))
    }
}
