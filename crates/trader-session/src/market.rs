//! Where `trader run` connects and how its time runs: Alpaca (or a
//! standalone `trader sim`) named by the environment when keys are set,
//! else the embedded simulator replaying the recorded set
//! ([`trader_sim::EmbeddedReplay`]); and the client for either. A broker's
//! time is its clock's, followed ([`crate::follow`]); the replay's is its
//! [`ReplayClock`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys, Profile, Secret};
use trader_core::{Clock, SystemClock};
use trader_sim::{EmbeddedReplay, ReplayClock, ReplaySpan, SimHandle};
use trader_store::RunMode;

use crate::run::RunRequest;

/// Where the trader connects and how its time runs.
pub struct Market {
    pub endpoints: AlpacaEndpoints,
    pub keys: AlpacaKeys,
    pub clock: Arc<dyn Clock>,
    pub mode: RunMode,
    /// Replay: first hour decided and the end of the replay.
    pub replay: Option<(i64, i64)>,
    /// Replay: the embedded simulator's clock and its start, restarted when
    /// the trader is ready.
    pub replay_clock: Option<(Arc<ReplayClock>, i64)>,
    /// Replay: the embedded simulator, stopped when the run ends.
    pub sim: Option<SimHandle>,
    /// Alpaca or a standalone simulator: its clock, followed
    /// ([`crate::follow`]); `clock` is this one's.
    pub following: Option<crate::follow::Following>,
}

/// Alpaca (or a standalone simulator) when the environment has keys, else
/// the embedded replay of `request.data`.
pub async fn connect(request: &RunRequest, profile: &Profile) -> anyhow::Result<Market> {
    match AlpacaKeys::from_env()? {
        Some(keys) => connect_alpaca(request, keys).await,
        None => connect_embedded(request, profile).await,
    }
}

/// Alpaca (or a standalone simulator) named by the environment.
pub async fn connect_alpaca(request: &RunRequest, keys: AlpacaKeys) -> anyhow::Result<Market> {
    let endpoints = AlpacaEndpoints::from_env()?;
    if endpoints.is_live() && !request.allow_live {
        bail!(
            "APCA_API_BASE_URL is Alpaca's live (real-money) host {}; \
             pass --allow-live to trade real money, or use the paper host",
            endpoints.trading_url
        );
    }
    tracing::info!(trading_url = %endpoints.trading_url, data_url = %endpoints.data_url, "trading through Alpaca");
    if let Some(speed) = request.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        bail!("--speed {speed} must be a positive number");
    }
    // The broker's clock, followed (its speed derived, never assumed),
    // through a client of its own: not the trading client's requests.
    let probe = AlpacaClient::new(&endpoints, &keys, ClientSettings::default())?;
    let following = crate::follow::follow(probe, request.speed)
        .await
        .context("reading the broker's clock (GET /v2/clock)")?;
    let clock: Arc<dyn Clock> = following.clock.clone();
    Ok(Market {
        endpoints,
        keys,
        clock,
        mode: RunMode::Live,
        replay: None,
        replay_clock: None,
        sim: None,
        following: Some(following),
    })
}

/// No keys: the embedded simulator over the recorded set of `request.data`.
pub async fn connect_embedded(request: &RunRequest, profile: &Profile) -> anyhow::Result<Market> {
    let bars =
        trader_recorded::read_recorded_symbols(&request.data, &profile.symbols, SystemClock.now())
            .with_context(|| format!("profile {} cannot be replayed", profile.name))?;
    let span = ReplaySpan {
        from: request.from,
        until: request.until,
        speed: request.speed,
        history_hours: Some(profile.history_hours),
    };
    let replay = EmbeddedReplay::start(bars, span).await?;
    let keys = AlpacaKeys {
        key_id: Secret::new(replay.key_id.clone()),
        secret_key: Secret::new(replay.secret_key.clone()),
    };
    let clock: Arc<dyn Clock> = replay.clock.clone();
    Ok(Market {
        endpoints: AlpacaEndpoints {
            trading_url: replay.sim.base_url(),
            data_url: replay.sim.base_url(),
        },
        keys,
        clock,
        mode: RunMode::Replay,
        replay: Some((replay.from, replay.until)),
        replay_clock: Some((replay.clock, replay.start)),
        sim: Some(replay.sim),
        following: None,
    })
}

/// The client for `market`: Alpaca's quota (or `requests_per_minute`),
/// or none for the embedded replay.
pub fn client_for(
    market: &Market,
    timeout: Duration,
    requests_per_minute: Option<NonZeroU32>,
) -> anyhow::Result<AlpacaClient> {
    Ok(AlpacaClient::new(
        &market.endpoints,
        &market.keys,
        client_settings(market.mode, timeout, requests_per_minute),
    )?)
}

/// The settings of [`client_for`] in `mode`.
fn client_settings(
    mode: RunMode,
    timeout: Duration,
    requests_per_minute: Option<NonZeroU32>,
) -> ClientSettings {
    let default = ClientSettings::default();
    match mode {
        // The replay compresses hours into milliseconds: Alpaca's per-minute
        // quota does not apply to the embedded simulator.
        RunMode::Replay => ClientSettings {
            requests_per_minute: NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN),
            timeout,
            ..default
        },
        _ => ClientSettings {
            requests_per_minute: requests_per_minute.unwrap_or(default.requests_per_minute),
            timeout,
            ..default
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_client_keeps_alpacas_quota_unless_told_another() {
        let t = Duration::from_secs(3);
        let q = |n| NonZeroU32::new(n);
        let alpaca = client_settings(RunMode::Live, t, None);
        assert_eq!(alpaca.requests_per_minute, q(180).unwrap());
        assert_eq!(alpaca.burst, q(5).unwrap());
        assert_eq!(alpaca.timeout, t);
        let raised = client_settings(RunMode::Live, t, q(720));
        assert_eq!(raised.requests_per_minute, q(720).unwrap());
        assert_eq!(raised.burst, q(5).unwrap());
        // The replay has no quota to speak of, whatever was asked.
        for asked in [None, q(60)] {
            let replay = client_settings(RunMode::Replay, t, asked);
            assert_eq!(replay.requests_per_minute, q(1_000_000).unwrap());
            assert_eq!(replay.timeout, t);
        }
    }
}
