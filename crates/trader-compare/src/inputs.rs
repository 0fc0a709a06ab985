//! What the report is built from: the files a backtest (or a summarised live
//! run) leaves in `out/NAME/`: `metrics.json`, `resources.json`, the decided
//! hours of `decisions.csv` and the curves of `equity.csv`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;
use trader_engine::Decisions;

/// One profile's outputs and the RSS its budget predicted.
pub(crate) struct Output {
    pub(crate) name: String,
    pub(crate) metrics: Value,
    pub(crate) resources: Value,
    pub(crate) decisions: Decisions,
    pub(crate) predicted_rss: u64,
}

impl Output {
    /// Reads `out/NAME/{metrics.json, resources.json, decisions.csv}`.
    pub(crate) fn read(out: &Path, name: String, predicted_rss: u64) -> anyhow::Result<Self> {
        let dir = out.join(&name);
        Ok(Output {
            metrics: read_json(&dir.join("metrics.json"))?,
            resources: read_json(&dir.join("resources.json"))?,
            decisions: read_decisions(&dir.join("decisions.csv"))?,
            name,
            predicted_rss,
        })
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The decided (not skipped) hours of a backtest's decisions.csv.
pub(crate) fn read_decisions(path: &Path) -> anyhow::Result<Decisions> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let r = record.with_context(|| format!("reading {}", path.display()))?;
        if !r.get(3).unwrap_or("").is_empty() {
            continue; // skipped hour
        }
        let line = r.position().map_or(0, csv::Position::line);
        let at = |what: &str| format!("{} line {line}: {what} is not JSON", path.display());
        let aggregate: Vec<f64> =
            serde_json::from_str(r.get(1).unwrap_or("[]")).with_context(|| at("aggregate"))?;
        let targets: BTreeMap<String, f64> =
            serde_json::from_str(r.get(2).unwrap_or("{}")).with_context(|| at("target_weights"))?;
        out.insert(r.get(0).unwrap_or("").to_owned(), (aggregate, targets));
    }
    Ok(out)
}

/// One profile's curves of equity.csv, per decided hour.
pub(crate) struct Curves {
    pub(crate) equity: Vec<f64>,
    pub(crate) buy_and_hold: Vec<f64>,
    /// The first hour (empty when none).
    pub(crate) first: String,
}

/// equity.csv of a backtest: equity, buy-and-hold, and the first hour.
pub(crate) fn read_equity(path: &Path) -> anyhow::Result<Curves> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut equity, mut buy_and_hold, mut first) = (Vec::new(), Vec::new(), None);
    for record in reader.records() {
        let r = record.with_context(|| format!("reading {}", path.display()))?;
        first.get_or_insert_with(|| r.get(0).unwrap_or("").to_owned());
        equity.push(r.get(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
        buy_and_hold.push(r.get(2).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
    }
    Ok(Curves {
        equity,
        buy_and_hold,
        first: first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "t,aggregate,target_weights,skipped_reason\n";

    fn file(text: &str) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("decisions.csv");
        fs_err::write(&path, text)?;
        Ok((dir, path))
    }

    #[test]
    fn decided_hours_are_read_and_skipped_ones_left_out() -> anyhow::Result<()> {
        let (_dir, path) = file(&format!(
            "{HEADER}2018-01-01T00:00:00Z,\"[0.5,-0.25]\",\"{{\"\"BTC/USD\"\":0.4}}\",\n\
             2018-01-01T01:00:00Z,\"[]\",\"{{}}\",stale bars\n"
        ))?;
        let decisions = read_decisions(&path)?;
        assert_eq!(decisions.len(), 1);
        let (aggregate, targets) = &decisions["2018-01-01T00:00:00Z"];
        assert_eq!(aggregate, &vec![0.5, -0.25]);
        assert_eq!(targets.get("BTC/USD"), Some(&0.4));
        Ok(())
    }

    #[test]
    fn a_bad_row_names_the_file_and_its_line() -> anyhow::Result<()> {
        let (_dir, path) = file(&format!(
            "{HEADER}2018-01-01T00:00:00Z,\"[0.5]\",\"{{}}\",\n\
             2018-01-01T01:00:00Z,\"[0.5,oops]\",\"{{}}\",\n"
        ))?;
        let Err(err) = read_decisions(&path) else {
            anyhow::bail!("a bad aggregate was read");
        };
        assert_eq!(
            err.to_string(),
            format!("{} line 3: aggregate is not JSON", path.display())
        );
        Ok(())
    }

    #[test]
    fn equity_reads_both_curves_and_the_first_hour() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("equity.csv");
        fs_err::write(
            &path,
            "t,equity,buy_and_hold\n2018-01-01T00:00:00Z,100000,100000\n2018-01-01T01:00:00Z,100250.5,99800\n",
        )?;
        let e = read_equity(&path)?;
        assert_eq!(e.equity, vec![100_000.0, 100_250.5]);
        assert_eq!(e.buy_and_hold, vec![100_000.0, 99_800.0]);
        assert_eq!(e.first, "2018-01-01T00:00:00Z");
        Ok(())
    }
}
