//! `trader sim`: the Alpaca-compatible simulator, standalone on 127.0.0.1.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;
use clap::Args;
use trader_config::AlpacaKeys;
use trader_core::Clock as _;
use trader_core::HOUR_SECS;
use trader_sim::{FaultConfig, ReplayClock, SimConfig, SimKeys, serve};

use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Recorded set to replay (one CSV per symbol).
    #[arg(long, default_value = "data/coinbase_2017_2018")]
    data: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Simulated seconds per real second (3600: one hour per second).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Simulated "now" at launch, RFC 3339 (default: 30 days before the last bar).
    #[arg(long)]
    start: Option<String>,
    /// TOML file of key pairs (`[[keys]] key_id = "..", secret_key = ".."`),
    /// one account each; the pair in APCA_API_KEY_ID/APCA_API_SECRET_KEY too.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Requests per key per minute before 429 (Alpaca's trading API: 200).
    #[arg(long, default_value_t = 200)]
    rate_limit: u32,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Fault injection: each a share (0..1) of requests.
#[derive(Debug, Args)]
#[allow(clippy::struct_field_names)] // the flags read --fault-*
pub(crate) struct FaultArgs {
    /// Share of requests answered 429 without being processed.
    #[arg(long, default_value_t = 0.0)]
    fault_429: f64,
    /// Share answered 500 without being processed.
    #[arg(long, default_value_t = 0.0)]
    fault_500: f64,
    /// Share answered only after --fault-slow-ms.
    #[arg(long, default_value_t = 0.0)]
    fault_slow: f64,
    /// Delay of a slow answer, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    fault_slow_ms: u64,
    /// Share processed, then answered with truncated JSON.
    #[arg(long, default_value_t = 0.0)]
    fault_malformed: f64,
    /// Share whose connection is dropped before the answer.
    #[arg(long, default_value_t = 0.0)]
    fault_drop: f64,
    /// Share of orders accepted whose answer is then lost.
    #[arg(long, default_value_t = 0.0)]
    fault_lost_order: f64,
    /// Seed of the fault draw.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
}

impl FaultArgs {
    fn config(&self) -> FaultConfig {
        FaultConfig {
            rate_limited: self.fault_429,
            server_error: self.fault_500,
            slow: self.fault_slow,
            slow_delay: Duration::from_millis(self.fault_slow_ms),
            malformed: self.fault_malformed,
            dropped: self.fault_drop,
            lost_order_answer: self.fault_lost_order,
            seed: self.fault_seed,
        }
    }
}

pub(crate) fn run(a: &SimArgs) -> anyhow::Result<Outcome> {
    if !(a.speed.is_finite() && a.speed > 0.0) {
        bail!("--speed {} must be a positive number", a.speed);
    }
    let faults = a.faults.config();
    faults
        .validate()
        .map_err(|e| anyhow::anyhow!("--fault-*: {e}"))?;
    let mut pairs: Vec<AlpacaKeys> = AlpacaKeys::from_env()?.into_iter().collect();
    if let Some(path) = &a.keys {
        pairs.extend(AlpacaKeys::from_file(path)?);
    }
    if pairs.is_empty() {
        bail!("no key pairs: set APCA_API_KEY_ID and APCA_API_SECRET_KEY, or give --keys FILE");
    }
    let bars =
        trader_recorded::read_recorded_set(&a.data, |_| true, trader_core::SystemClock.now())?;
    let last = bars
        .values()
        .filter_map(|b| b.last())
        .map(|b| b.t)
        .max()
        .unwrap_or(0);
    let start = match &a.start {
        Some(s) => crate::args::parse_time("--start", s)?,
        None => last - trader_sim::DEFAULT_REPLAY_DAYS * 24 * HOUR_SECS,
    };
    let start = DateTime::from_timestamp(start, 0)
        .with_context(|| format!("the replay start {start} is out of range"))?;
    let config = SimConfig {
        bars,
        accounts: pairs
            .iter()
            .map(|k| SimKeys {
                key_id: k.key_id.expose().to_owned(),
                secret_key: k.secret_key.expose().to_owned(),
            })
            .collect(),
        starting_cash: trader_core::PAPER_STARTING_CASH,
        clock: Arc::new(ReplayClock::new(start, a.speed)),
        rate_limit_per_minute: a.rate_limit,
        faults,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let handle = serve(config, a.port).await?;
        output::print(&handle.base_url());
        tracing::info!(
            accounts = pairs.len(),
            start = %start.to_rfc3339(),
            speed = a.speed,
            "simulator running; Ctrl-C stops it"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        handle.stop().await;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}
