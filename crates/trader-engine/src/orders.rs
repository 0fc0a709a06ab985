//! Orders after the decision: sending, settling the unconfirmed and open
//! ones at later hours (re-sent with their id, adopted when they had gone
//! through), recording fills once, and reconciling with the broker at start.

use trader_core::{Broker, CRYPTO_FEE_BPS, ErrorKind, OrderAmount, OrderRequest, OrderStatus};
use trader_store::{OrderState, Recorder};

use crate::{Engine, EngineError};

impl<B: Broker, R: Recorder> Engine<B, R> {
    /// Sends one planned order and records what the broker said.
    pub(crate) async fn send(&mut self, order: &OrderRequest, now: i64) -> Result<(), EngineError> {
        match self.broker.place(order).await {
            Ok(p) => {
                self.stats.orders_sent += 1;
                if p.adopted {
                    self.stats.orders_adopted += 1;
                }
                // The fill before the status: an order stored as filled is
                // never looked up again, so its fill must already be there.
                self.record_fill_if_done(&p.order).await?;
                self.store
                    .update_order(
                        &order.client_order_id,
                        &OrderState::from(&p.order.status),
                        Some(&p.order.id),
                        now,
                    )
                    .await?;
            }
            Err(e) => {
                self.stats.orders_failed += 1;
                // Refused outright: final. Anything else: unknown, settled later.
                let status = if matches!(e.kind, ErrorKind::Rejected | ErrorKind::NotFound) {
                    OrderState::Rejected
                } else {
                    OrderState::Unknown
                };
                tracing::warn!(client_order_id = %order.client_order_id, error = %e, status = status.as_str(), "order not confirmed");
                self.store
                    .update_order(&order.client_order_id, &status, None, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn record_fill_if_done(&mut self, o: &trader_core::Order) -> Result<(), EngineError> {
        if o.status == OrderStatus::Filled
            && let Some(price) = o.filled_avg_price
        {
            let fee = o.filled_qty * price * CRYPTO_FEE_BPS / 10_000.0;
            self.store
                .record_fill(
                    &o.client_order_id,
                    o.filled_qty,
                    price,
                    fee,
                    o.filled_at.unwrap_or(o.created_at),
                )
                .await?;
            self.stats.fills += 1;
        }
        Ok(())
    }

    /// Brings the run's unsettled orders up to date: planned or unknown ones
    /// are sent again with their id (adopted if they had gone through), open
    /// ones are looked up and their fills recorded. Broker errors leave them
    /// for the next hour.
    pub async fn settle(&mut self, now: i64) -> Result<(), EngineError> {
        for stored in self.store.unsettled_orders(self.run_id).await? {
            if stored.status.needs_resend() {
                let amount = match (stored.qty, stored.notional) {
                    (Some(q), _) => OrderAmount::Qty(q),
                    (None, Some(n)) => OrderAmount::Notional(n),
                    (None, None) => continue,
                };
                tracing::info!(client_order_id = %stored.client_order_id, status = stored.status.as_str(), "re-sending an order not confirmed");
                self.send(
                    &OrderRequest {
                        client_order_id: stored.client_order_id.clone(),
                        symbol: stored.symbol.clone(),
                        side: stored.side,
                        amount,
                    },
                    now,
                )
                .await?;
                continue;
            }
            match self
                .broker
                .order_by_client_id(&stored.client_order_id)
                .await
            {
                Ok(Some(o)) => {
                    // The fill first, as in `send`.
                    self.record_fill_if_done(&o).await?;
                    let state = OrderState::from(&o.status);
                    if state != stored.status {
                        self.store
                            .update_order(&o.client_order_id, &state, Some(&o.id), now)
                            .await?;
                    }
                }
                Ok(None) => {
                    tracing::warn!(client_order_id = %stored.client_order_id, "broker has no such order");
                    self.store
                        .update_order(&stored.client_order_id, &OrderState::Unknown, None, now)
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(client_order_id = %stored.client_order_id, error = %e, "order status unreadable; later");
                }
            }
        }
        Ok(())
    }

    /// Checks the broker's positions against the store's last snapshot, and
    /// its open orders against the store's orders, and logs every difference;
    /// the broker's view wins (the next decision reads it). Returns the
    /// differences.
    pub async fn reconcile(&mut self) -> Result<Vec<String>, EngineError> {
        let positions = match self.broker.positions().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "positions unreadable at start; the first hour will retry");
                return Ok(Vec::new());
            }
        };
        let mut diffs = Vec::new();
        if let Some(stored) = self.store.last_positions(self.run_id).await? {
            for s in &self.symbols {
                let broker = positions
                    .iter()
                    .find(|p| &p.symbol == s)
                    .map_or(0.0, |p| p.qty);
                let mine = stored.get(s.as_str()).copied().unwrap_or(0.0);
                if (broker - mine).abs() > 1e-9 {
                    diffs.push(format!("{s}: broker {broker}, store {mine}"));
                }
            }
        }
        match self.broker.open_orders().await {
            Ok(open) => {
                for o in open {
                    if !self.store.order_known(&o.client_order_id).await? {
                        diffs.push(format!(
                            "open order {} ({} {}) is not in the store",
                            o.client_order_id,
                            o.side.as_str(),
                            o.symbol
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "open orders unreadable at start");
            }
        }
        for d in &diffs {
            tracing::warn!(difference = %d, "the broker differs from the store (orders filled since, or placed or changed outside this trader); the broker's view wins");
        }
        Ok(diffs)
    }
}
