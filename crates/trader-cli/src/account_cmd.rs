//! `trader account`: the broker's view through the same client `trader run`
//! uses (keys from `APCA_API_KEY_ID`/`APCA_API_SECRET_KEY`, hosts from
//! `APCA_API_BASE_URL`/`APCA_API_DATA_URL`): cash, equity, positions, open
//! orders. Reads only; places nothing.

use anyhow::{Context, anyhow};
use clap::Args;
use serde::Serialize;
use trader_alpaca::{AlpacaClient, ClientSettings};
use trader_config::{AlpacaEndpoints, AlpacaKeys};
use trader_core::{Broker, OrderAmount};

use crate::{Outcome, output};

#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PositionView {
    symbol: String,
    qty: f64,
    avg_entry_price: f64,
    market_value: f64,
}

#[derive(Serialize)]
struct OrderView {
    client_order_id: String,
    symbol: String,
    side: &'static str,
    amount: String,
    status: String,
}

#[derive(Serialize)]
struct AccountView {
    trading_url: String,
    live: bool,
    cash: f64,
    equity: f64,
    buying_power: f64,
    positions: Vec<PositionView>,
    open_orders: Vec<OrderView>,
}

pub(crate) fn run(a: &AccountArgs) -> anyhow::Result<Outcome> {
    let keys = AlpacaKeys::from_env()?.ok_or_else(|| {
        anyhow!(
            "no Alpaca keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY \
             (for the simulator: the pair it was started with, and APCA_API_BASE_URL / \
             APCA_API_DATA_URL set to the URL it printed)"
        )
    })?;
    let endpoints = AlpacaEndpoints::from_env()?;
    let client = AlpacaClient::new(&endpoints, &keys, ClientSettings::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let view = runtime.block_on(async {
        let account = client.account().await?;
        let positions = client.positions().await?;
        let orders = client.open_orders().await?;
        anyhow::Ok(AccountView {
            trading_url: endpoints.trading_url.clone(),
            live: endpoints.is_live(),
            cash: account.cash,
            equity: account.equity,
            buying_power: account.buying_power,
            positions: positions
                .into_iter()
                .map(|p| PositionView {
                    symbol: p.symbol.as_str().to_owned(),
                    qty: p.qty,
                    avg_entry_price: p.avg_entry_price,
                    market_value: p.market_value,
                })
                .collect(),
            open_orders: orders
                .into_iter()
                .map(|o| OrderView {
                    client_order_id: o.client_order_id,
                    symbol: o.symbol.as_str().to_owned(),
                    side: o.side.as_str(),
                    amount: match o.amount {
                        OrderAmount::Qty(q) => format!("qty {q}"),
                        OrderAmount::Notional(n) => format!("${n:.2}"),
                    },
                    status: o.status.as_str().to_owned(),
                })
                .collect(),
        })
    })?;
    if a.json {
        output::print_json(&view)?;
    } else {
        output::print(&render(&view));
    }
    Ok(Outcome::Ok)
}

fn render(v: &AccountView) -> String {
    let mut out = format!(
        "account at {}{}\n  cash          {:>14.2} USD\n  equity        {:>14.2} USD\n  buying power  {:>14.2} USD\n",
        v.trading_url,
        if v.live { " (LIVE)" } else { "" },
        v.cash,
        v.equity,
        v.buying_power
    );
    out += &format!("positions: {}\n", v.positions.len());
    for p in &v.positions {
        out += &format!(
            "  {:<10} {:>16.9} @ {:>12.2}  value {:>12.2}\n",
            p.symbol, p.qty, p.avg_entry_price, p.market_value
        );
    }
    out += &format!("open orders: {}\n", v.open_orders.len());
    for o in &v.open_orders {
        out += &format!(
            "  {:<40} {:<4} {:<10} {:<14} {}\n",
            o.client_order_id, o.side, o.symbol, o.amount, o.status
        );
    }
    out
}
