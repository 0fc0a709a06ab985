//! The budget as a table, in the spirit of the user's own budget notes.

use std::fmt::Write;

use trader_core::{ByteSize, DemandTerm};

use crate::{Report, Verdict};

fn size_or_dash(bytes: u64) -> String {
    if bytes == 0 {
        "-".to_owned()
    } else {
        ByteSize(bytes).to_string()
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{p:.1} %"))
}

fn signed(h: Option<i64>) -> String {
    match h {
        None => "-".to_owned(),
        Some(h) if h < 0 => format!("-{}", ByteSize(h.unsigned_abs())),
        Some(h) => ByteSize(h.unsigned_abs()).to_string(),
    }
}

/// One row of the table: `name count RAM VRAM basis`.
fn table_row(out: &mut String, name: &str, count: &str, ram: &str, vram: &str, basis: &str) {
    let _ = writeln!(out, "  {name:<24} {count:>5} {ram:>10} {vram:>10}  {basis}");
}

/// A demand term's row, indented under its section.
fn term_row(out: &mut String, t: &DemandTerm) {
    table_row(
        out,
        &format!("  {}", t.component),
        "",
        &size_or_dash(t.ram_bytes),
        &size_or_dash(t.vram_bytes),
        &t.basis,
    );
}

/// Renders a report as the table `trader budget` prints. `title` is the first line.
#[must_use]
pub fn render_text(report: &Report, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out);
    table_row(&mut out, "component", "count", "RAM", "VRAM", "basis");
    let _ = writeln!(out, "  this trader");
    for t in &report.trader_terms {
        term_row(&mut out, t);
    }
    table_row(
        &mut out,
        "  = trader",
        "1",
        &size_or_dash(report.ram.trader),
        &size_or_dash(report.vram.trader),
        "",
    );
    if !report.tenants.is_empty() {
        let _ = writeln!(out, "  co-tenants");
        for t in &report.tenants {
            table_row(
                &mut out,
                &format!("  {}", t.name),
                &t.count.to_string(),
                &size_or_dash(t.ram),
                &size_or_dash(t.vram),
                "",
            );
        }
    }
    table_row(
        &mut out,
        "total",
        "",
        &ByteSize(report.ram.total).to_string(),
        &size_or_dash(report.vram.total),
        "",
    );
    let env = &report.envelope;
    table_row(
        &mut out,
        "machine",
        "",
        &ByteSize(env.ram.machine_total).to_string(),
        &env.vram
            .as_ref()
            .map_or_else(|| "-".to_owned(), |v| ByteSize(v.machine_total).to_string()),
        "",
    );
    table_row(
        &mut out,
        "used (% of machine)",
        "",
        &pct(report.ram.percent_of_machine),
        &pct(report.vram.percent_of_machine),
        "",
    );
    table_row(
        &mut out,
        "limit",
        "",
        &format!("{:.0} %", env.ram.allowed_percent),
        &env.vram
            .as_ref()
            .map_or_else(|| "-".to_owned(), |v| format!("{:.0} %", v.allowed_percent)),
        "",
    );
    table_row(
        &mut out,
        "envelope (allowed)",
        "",
        &report
            .ram
            .allowed
            .map_or_else(|| "-".to_owned(), |a| ByteSize(a).to_string()),
        &report
            .vram
            .allowed
            .map_or_else(|| "-".to_owned(), |a| ByteSize(a).to_string()),
        "",
    );
    table_row(
        &mut out,
        "headroom",
        "",
        &signed(report.ram.headroom),
        &signed(report.vram.headroom),
        "",
    );
    render_backtest(&mut out, report);
    render_footer(&mut out, report);
    out
}

/// The backtest's own section (`trader budget` computes it; a gate does not).
fn render_backtest(out: &mut String, report: &Report) {
    let Some(bt) = &report.backtest else {
        return;
    };
    let _ = writeln!(
        out,
        "  trader backtest ({} decided hours in memory, {}-hour batched blocks)",
        bt.decided_hours, bt.block_hours
    );
    for t in &bt.terms {
        term_row(out, t);
    }
    table_row(
        out,
        "  = backtest",
        "1",
        &ByteSize(bt.ram).to_string(),
        "",
        "in place of this trader, beside the co-tenants",
    );
}

fn render_footer(out: &mut String, report: &Report) {
    let env = &report.envelope;
    let _ = writeln!(out);
    let _ = writeln!(out, "RAM from:  {}", env.ram.source);
    let _ = writeln!(
        out,
        "VRAM from: {}",
        env.vram.as_ref().map_or_else(
            || env
                .vram_unknown_reason
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
            |v| v.source.clone()
        )
    );
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out);
    match report.verdict {
        Verdict::Fits => {
            let _ = writeln!(out, "verdict: FITS");
        }
        Verdict::Refused => {
            let _ = writeln!(out, "verdict: REFUSED");
            for r in &report.reasons {
                let _ = writeln!(out, "  {r}");
            }
            if report.fixes.is_empty() {
                let _ = writeln!(out, "no single change fits; combine them or free memory");
            } else {
                let _ = writeln!(out, "it would fit with any one of (cheapest first):");
                for f in &report.fixes {
                    let _ = writeln!(
                        out,
                        "  {:<22} {:<44} RAM {:.1} %, VRAM {}",
                        f.flag,
                        f.effect,
                        f.ram_percent,
                        pct(f.vram_percent)
                    );
                }
            }
        }
    }
}
