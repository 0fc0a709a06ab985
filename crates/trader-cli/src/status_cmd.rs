//! `trader status --profile P`: what the store says about the profile's
//! trader (newest bar per symbol, newest run, the ensemble version it
//! decides with, decision, equity and positions, orders that may still
//! change) and, when the trader is up, what its `/metrics` says (RSS, newest bar's age, active alerts). Reads the store only (read-only use: it
//! opens the file through the same migrations, so a missing file is an
//! error, never created).
//!
//! The view itself is `trader_session::status`; this module parses the
//! flags, builds the runtime and prints.

use clap::Args;
use trader_config::Profile;
use trader_core::{StoreLocation, format_time};
use trader_session::StatusView;
use trader_store::CurrentEnsemble;

use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Profile name (configs/NAME.toml) or path to a TOML file.
    #[arg(long, required_unless_present = "all")]
    profile: Option<String>,
    /// Every profile that ran in the store (--store, TRADER_STORE_URL, or
    /// --profile's store): traders of several hosts sharing one database.
    #[arg(long)]
    all: bool,
    /// SQLite file or postgres:// URL; default: TRADER_STORE_URL, else the
    /// profile's `[store]`.
    #[arg(long, value_parser = trader_config::parse_store_arg)]
    store: Option<StoreLocation>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: &StatusArgs, config_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profile = a
        .profile
        .as_deref()
        .map(|p| Profile::load(p, config_dir))
        .transpose()?;
    if a.all {
        let store = match (&profile, a.store.as_ref()) {
            (Some(p), given) => trader_config::resolve_store(given, &p.store)?,
            (None, Some(given)) => given.clone(),
            (None, None) => match trader_config::store_url_from_env() {
                Some(url) => trader_config::parse_store_arg(&url)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", trader_config::STORE_URL_ENV))?,
                None => anyhow::bail!(
                    "trader status --all: which store? give --store, TRADER_STORE_URL or --profile"
                ),
            },
        };
        let views = runtime.block_on(trader_session::status::gather_all(&store))?;
        if a.json {
            output::print_json(&views)?;
        } else {
            output::print(&render_all(&store, &views));
        }
        return Ok(Outcome::Ok);
    }
    let Some(profile) = profile else {
        anyhow::bail!("trader status: give --profile, or --all");
    };
    let store = trader_config::resolve_store(a.store.as_ref(), &profile.store)?;
    let view = runtime.block_on(trader_session::status::gather(&profile, &store))?;
    if a.json {
        output::print_json(&view)?;
    } else {
        output::print(&render(&view));
    }
    Ok(Outcome::Ok)
}

/// `trader status --all`: one block per profile of the store.
fn render_all(store: &StoreLocation, views: &[trader_session::StoreProfileView]) -> String {
    let mut out = format!(
        "trader status: store {store}, {} profile{}\n",
        views.len(),
        if views.len() == 1 { "" } else { "s" }
    );
    for v in views {
        out += &format!("profile {}\n", v.profile);
        if let Some(holder) = &v.held_by {
            out += &format!("  held by      {holder}\n");
        }
        out += &render_status(&v.status);
    }
    out
}

fn render(v: &StatusView) -> String {
    let mut out = format!("trader status: profile {}, store {}\n", v.profile, v.store);
    for (s, t) in &v.newest_bars {
        out += &format!("  newest bar   {s:<9} {}\n", t.as_deref().unwrap_or("none"));
    }
    out += &render_status(&v.status);
    out += &render_live(v.live.as_ref());
    out
}

/// What the store says of one profile: run, ensemble, decision, equity,
/// open orders.
fn render_status(s: &trader_store::ProfileStatus) -> String {
    let mut out = String::new();
    match &s.run {
        Some(run) => {
            out += &format!(
                "  run          {} ({}), started {}, {}\n",
                run.id,
                run.mode,
                format_time(run.started_at),
                run.ended_at.map_or_else(
                    || "not finished (running, or stopped by a kill)".to_owned(),
                    |e| format!(
                        "{} {}",
                        s.run_outcome.as_deref().unwrap_or("ended"),
                        format_time(e)
                    )
                )
            );
            if let Some(error) = &s.run_error {
                out += &format!("  run error    {error}\n");
            }
        }
        None => out += "  run          none\n",
    }
    if let Some(e) = &s.ensemble {
        out += &format!("  ensemble     {}\n", ensemble_line(e));
    }
    if let Some(d) = &s.last_decision {
        out += &format!(
            "  decision     {} {}{}\n",
            format_time(d.bar_t),
            d.skipped_reason.as_ref().map_or_else(
                || format!("targets {}", d.target_weights),
                |r| format!("skipped: {r}")
            ),
            d.ensemble_version
                .as_ref()
                .map_or_else(String::new, |v| format!(" (ensemble {v})"))
        );
    }
    if let Some(e) = &s.last_equity {
        out += &format!(
            "  equity       {:.2} USD (cash {:.2}) at {}\n  positions    {}\n",
            e.equity,
            e.cash,
            format_time(e.t),
            e.positions
        );
    }
    out += &format!("  open orders  {}\n", s.unsettled_orders.len());
    for o in &s.unsettled_orders {
        out += &format!(
            "    {} {} {} {}\n",
            o.client_order_id,
            o.side.as_str(),
            o.symbol,
            o.status.as_str()
        );
    }
    out
}

/// What the profile's running trader says on its metrics port.
fn render_live(live: Option<&trader_session::status::LiveView>) -> String {
    let mut out = String::new();
    match live {
        Some(l) => {
            out += &format!(
                "  live         {} answers: RSS {:.1} MB, newest bar closed {:.0} s ago\n",
                l.url,
                l.rss_bytes.unwrap_or(0.0) / 1e6,
                l.last_bar_age_seconds.unwrap_or(f64::NAN)
            );
            if l.alerts_active.is_empty() {
                out += "  alerts       none active\n";
            }
            for (kind, n) in &l.alerts_active {
                out += &format!("  alerts       {kind}: {n} active\n");
            }
        }
        None => {
            out += "  live         no trader answering on the profile's metrics port (not running, or --no-metrics)\n";
        }
    }
    out
}

/// `3f9a1c0b7d2e (5 members: trial_0003, trial_0001, trial_0007, ...),
/// adopted 2026-11-20T10:00:00+00:00`, and how many adoptions its run had
/// when more than one.
fn ensemble_line(e: &CurrentEnsemble) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<&str> = e
        .members
        .iter()
        .take(SHOWN)
        .map(|m| m.name.as_str())
        .collect();
    if e.members.len() > SHOWN {
        names.push("...");
    }
    let swaps = if e.adoptions_in_run > 1 {
        format!(" ({} adoptions in run {})", e.adoptions_in_run, e.run_id)
    } else {
        String::new()
    };
    format!(
        "{} ({} member{}: {}), adopted {}{swaps}",
        e.version,
        e.members.len(),
        if e.members.len() == 1 { "" } else { "s" },
        names.join(", "),
        format_time(e.adopted_at)
    )
}

#[cfg(test)]
mod tests {
    use trader_store::VersionMember;

    use super::*;

    fn ensemble(n: u32, adoptions_in_run: u32) -> CurrentEnsemble {
        CurrentEnsemble {
            run_id: 7,
            version: "3f9a1c0b7d2e".to_owned(),
            members: (0..n)
                .map(|i| VersionMember {
                    name: format!("trial_{:04}", n - i),
                    rank: i,
                    score: 1.0,
                })
                .collect(),
            adopted_at: 1_795_168_800,
            adoptions_in_run,
        }
    }

    #[test]
    fn the_ensemble_line_names_the_version_its_first_members_and_when() {
        assert_eq!(
            ensemble_line(&ensemble(5, 1)),
            "3f9a1c0b7d2e (5 members: trial_0005, trial_0004, trial_0003, ...), adopted 2026-11-20T10:00:00+00:00"
        );
        assert_eq!(
            ensemble_line(&ensemble(1, 3)),
            "3f9a1c0b7d2e (1 member: trial_0001), adopted 2026-11-20T10:00:00+00:00 (3 adoptions in run 7)"
        );
    }
}
