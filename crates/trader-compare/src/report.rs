//! The report of two profiles' outputs: `report.json` (metrics side by side
//! and their difference, decision agreement, predicted vs measured
//! resources), `report.md` (the same as tables) and `equity.svg`, replaced
//! together once all three are written.

use std::path::Path;

use serde_json::{Value, json};
use trader_engine::decision_agreement;
use trader_files::Staged;

use crate::inputs::{Output, read_equity};
use crate::plot::{Curve, equity_svg};

/// Writes `out/{report.json, equity.svg, report.md}` from both outputs (and
/// their `equity.csv`); returns the markdown.
pub(crate) fn write(out: &Path, a: &Output, b: &Output) -> anyhow::Result<String> {
    let report = build(a, b);
    let (na, nb) = (a.name.as_str(), b.name.as_str());
    fs_err::create_dir_all(out)?;
    let eq_a = read_equity(&out.join(na).join("equity.csv"))?;
    let eq_b = read_equity(&out.join(nb).join("equity.csv"))?;
    let md = render_md(&report, na, nb);
    // The three replaced together, once all are written.
    let mut staged = Staged::default();
    staged.add(
        &out.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    staged.add_with(&out.join("equity.svg"), |svg| {
        equity_svg(
            svg,
            &eq_a.first,
            &[
                Curve {
                    name: na,
                    values: &eq_a.equity,
                },
                Curve {
                    name: nb,
                    values: &eq_b.equity,
                },
                Curve {
                    name: "buy and hold",
                    values: &eq_a.buy_and_hold,
                },
            ],
        )
    })?;
    staged.add(&out.join("report.md"), &md)?;
    staged.commit()?;
    Ok(md)
}

/// The report's JSON: `profiles`, `metrics`, `difference` (B - A of every
/// number both have), `agreement` and `resources`.
pub(crate) fn build(a: &Output, b: &Output) -> Value {
    let (na, nb) = (a.name.as_str(), b.name.as_str());
    let mut difference = serde_json::Map::new();
    if let (Some(oa), Some(ob)) = (a.metrics.as_object(), b.metrics.as_object()) {
        for (k, va) in oa {
            if let (Some(x), Some(y)) = (va.as_f64(), ob.get(k).and_then(Value::as_f64)) {
                difference.insert(k.clone(), json!(y - x));
            }
        }
    }
    let agree = decision_agreement(&a.decisions, &b.decisions);
    let resources = |o: &Output| {
        let r = &o.resources;
        json!({
            "budget_predicted_rss_bytes": o.predicted_rss,
            "peak_rss_bytes": r["peak_rss_bytes"],
            "decision_latency_us_p50": r["decision_latency_us_p50"],
            "decision_latency_us_p99": r["decision_latency_us_p99"],
        })
    };
    json!({
        "profiles": [na, nb],
        "metrics": { na: a.metrics, nb: b.metrics },
        "difference": { "of": format!("{nb} - {na}"), "values": difference },
        "agreement": {
            "hours_compared": agree.hours,
            "same_way_share": agree.same_way_share,
            "mean_abs_action_difference": agree.mean_abs_action_difference,
        },
        "resources": { na: resources(a), nb: resources(b) },
    })
}

/// report.md: the metrics table with the difference, the agreement in a
/// sentence, the resources table.
pub(crate) fn render_md(report: &Value, a: &str, b: &str) -> String {
    let r = report;
    let mut md = format!(
        "# trader compare: {a} vs {b}\n\n| metric | {a} | {b} | {b} - {a} |\n|---|---|---|---|\n"
    );
    if let Some(m) = r["metrics"][a].as_object() {
        for (k, va) in m {
            let vb = &r["metrics"][b][k];
            let diff = &r["difference"]["values"][k];
            let fmt = |v: &Value| match v.as_f64() {
                Some(x) if v.is_f64() => format!("{x:.6}"),
                _ => v.to_string().trim_matches('"').to_owned(),
            };
            md += &format!(
                "| {k} | {} | {} | {} |\n",
                fmt(va),
                fmt(vb),
                if diff.is_null() {
                    String::new()
                } else {
                    fmt(diff)
                }
            );
        }
    }
    let agree = &r["agreement"];
    md += &format!(
        "\n## Decision agreement\n\n{} hours compared: target weights point the same way (same symbols held) in {:.1} % of them; mean absolute difference of the aggregated actions {:.4}.\n",
        agree["hours_compared"],
        agree["same_way_share"].as_f64().unwrap_or(0.0) * 100.0,
        agree["mean_abs_action_difference"].as_f64().unwrap_or(0.0)
    );
    md += &format!("\n## Resources\n\n| | {a} | {b} |\n|---|---|---|\n");
    for (label, key, scale) in [
        ("budget predicts (MB)", "budget_predicted_rss_bytes", 1e6),
        ("peak RSS measured (MB)", "peak_rss_bytes", 1e6),
        ("decision latency p50 (us)", "decision_latency_us_p50", 1.0),
        ("decision latency p99 (us)", "decision_latency_us_p99", 1.0),
    ] {
        let v = |p: &str| {
            r["resources"][p][key]
                .as_f64()
                .map_or_else(String::new, |x| format!("{:.1}", x / scale))
        };
        md += &format!("| {label} | {} | {} |\n", v(a), v(b));
    }
    md
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn output(name: &str, sharpe: f64, btc: f64, peak: u64) -> Output {
        let hour = |t: &str, w: f64| {
            (
                t.to_owned(),
                (vec![w], BTreeMap::from([("BTC/USD".to_owned(), w)])),
            )
        };
        Output {
            name: name.to_owned(),
            metrics: json!({ "profile": name, "sharpe": sharpe, "trades": 3 }),
            resources: json!({
                "peak_rss_bytes": peak,
                "decision_latency_us_p50": 850,
                "decision_latency_us_p99": 1200.5,
            }),
            decisions: BTreeMap::from([hour("h0", btc), hour("h1", 0.0)]),
            predicted_rss: 300_000_000,
        }
    }

    #[test]
    fn the_report_sets_both_profiles_side_by_side() {
        let a = output("full", 1.25, 0.5, 250_000_000);
        let b = output("lean", 1.0, 0.25, 120_000_000);
        let report = build(&a, &b);
        assert_eq!(report["profiles"], json!(["full", "lean"]));
        assert_eq!(report["difference"]["of"], "lean - full");
        assert_eq!(report["difference"]["values"]["sharpe"], json!(-0.25));
        assert_eq!(report["difference"]["values"]["trades"], json!(0.0));
        assert!(report["difference"]["values"]["profile"].is_null());
        assert_eq!(report["agreement"]["hours_compared"], 2);
        assert_eq!(report["agreement"]["same_way_share"], json!(1.0));
        assert_eq!(
            report["resources"]["lean"]["budget_predicted_rss_bytes"],
            300_000_000
        );
        assert_eq!(report["resources"]["full"]["peak_rss_bytes"], 250_000_000);

        let md = render_md(&report, "full", "lean");
        assert!(md.starts_with(
            "# trader compare: full vs lean\n\n| metric | full | lean | lean - full |\n"
        ));
        assert!(
            md.contains("| sharpe | 1.250000 | 1.000000 | -0.250000 |\n"),
            "{md}"
        );
        assert!(md.contains("| profile | full | lean |  |\n"), "{md}");
        assert!(md.contains("| trades | 3 | 3 | 0.000000 |\n"), "{md}");
        assert!(md.contains("2 hours compared: target weights point the same way (same symbols held) in 100.0 % of them; mean absolute difference of the aggregated actions 0.1250.\n"), "{md}");
        assert!(
            md.contains("| budget predicts (MB) | 300.0 | 300.0 |\n"),
            "{md}"
        );
        assert!(
            md.contains("| peak RSS measured (MB) | 250.0 | 120.0 |\n"),
            "{md}"
        );
        assert!(
            md.ends_with("| decision latency p99 (us) | 1200.5 | 1200.5 |\n"),
            "{md}"
        );
    }
}
