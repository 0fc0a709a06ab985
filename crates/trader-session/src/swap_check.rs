//! The budget's word on a running trader's ensemble swap
//! ([`trader_engine::SwapCheck`]): the new members with the profile's
//! knobs, plus the swap transient (the ensemble in use stays resident while
//! the new one loads), next to the host's co-tenants as measured now (this
//! process's own RSS taken out of the RAM in use, as its budget counts it).

use std::path::PathBuf;

use trader_budget::{Verdict, own_memory, resolve_host_besides, swap_report, swap_transient};
use trader_config::Profile;
use trader_engine::SwapCheck;
use trader_ensemble::MemberSummary;

/// Where a run's budget comes from: its profile and host file.
pub(crate) struct BudgetSwapCheck {
    pub(crate) profile: Profile,
    /// `--host`, else CONFIG_DIR/host.toml, else this machine probed.
    pub(crate) host: Option<PathBuf>,
    pub(crate) config_dir: PathBuf,
}

impl SwapCheck for BudgetSwapCheck {
    fn admit(
        &self,
        members: &[MemberSummary],
        catalog_len: usize,
        in_use_bytes: u64,
    ) -> Result<(), String> {
        let host = resolve_host_besides(self.host.as_deref(), &self.config_dir, own_memory().rss)
            .map_err(|e| format!("the host could not be measured: {e}"))?;
        let transient = swap_transient(
            in_use_bytes,
            members,
            self.profile.dtype,
            self.profile.device,
        );
        let transient_ram = transient.ram_bytes;
        let report = swap_report(&self.profile, members, catalog_len, transient, &host)
            .map_err(|e| format!("the budget could not be computed: {e}"))?;
        if report.verdict == Verdict::Fits {
            return Ok(());
        }
        let mb = |b: u64| b as f64 / 1e6;
        Err(format!(
            "{} new members with the swap transient ({:.1} MB: the ensemble in use and one more load) need RAM {:.1} MB (trader {:.1} MB + co-tenants now {:.1} MB) of {} allowed: {}",
            members.len(),
            mb(transient_ram),
            mb(report.ram.total),
            mb(report.ram.trader),
            mb(report.ram.tenants),
            report.ram.allowed.map_or_else(
                || "an unknown limit".to_owned(),
                |a| format!("{:.1} MB", mb(a))
            ),
            report.reasons.join("; ")
        ))
    }

    fn rss_bytes(&self) -> Option<u64> {
        Some(own_memory().rss).filter(|&rss| rss > 0)
    }
}
