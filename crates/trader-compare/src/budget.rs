//! What the budget predicts for a comparison, from the reports of the
//! caller's admission of both profiles: each trader's own RSS (shown next to
//! the measured peak), and with `--live` the first trader as a co-tenant of
//! the second (both run at once).

use trader_budget::{Report, Tenant};

/// The RAM the budget predicts for the trader itself.
#[must_use]
pub fn predicted_rss(report: &Report) -> u64 {
    report.trader_terms.iter().map(|t| t.ram_bytes).sum()
}

/// `trader run --profile PROFILE` (admitted with `report`) as a co-tenant of
/// the other live trader of `trader compare --live`.
#[must_use]
pub fn live_cotenant(profile: &str, report: &Report) -> Tenant {
    Tenant {
        name: format!("trader run --profile {profile} (compare --live)"),
        count: 1,
        ram_each: predicted_rss(report),
        vram_each: report.trader_terms.iter().map(|t| t.vram_bytes).sum(),
    }
}
