//! What the engine writes and reads per hour, behind one trait: the SQLite
//! [`Store`] (live runs and replays: durable, resumable) or a
//! [`MemoryRecorder`] (backtests: the same records in process memory, no
//! round trip to SQLite's worker thread per write, gone at exit).
//!
//! Both keep the same semantics: a decision and its planned orders land
//! together, a fill is recorded once per order, unsettled orders come back
//! oldest first, and decisions are listed by hour with the same JSON text.
//! An ensemble version's members are kept once however often it is
//! adopted, and a run's adoptions come back oldest first.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use trader_core::{Bar, Symbol};

use crate::{
    DecisionRecord, DecisionRow, EnsembleAdoption, FillRow, HistoryWindow, InsertReport,
    OrderState, PlannedOrder, RunCounts, StoreError, StoredOrder, VersionMember,
};

/// The engine's records: the one API of a run's records, implemented by
/// the [`Store`](crate::Store) (`store_records.rs`, SQLite or PostgreSQL) and the [`MemoryRecorder`].
pub trait Recorder: Send + Sync {
    /// The window of `symbols` the engine starts with.
    fn load_window(
        &self,
        symbols: &[Symbol],
        hours: u32,
    ) -> impl Future<Output = Result<HistoryWindow, StoreError>> + Send;
    fn insert_bars(
        &self,
        symbol: &Symbol,
        bars: &[Bar],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<InsertReport, StoreError>> + Send;
    fn decided(
        &self,
        run_id: i64,
        bar_t: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn record_decision(
        &self,
        run_id: i64,
        decision: &DecisionRecord,
        orders: &[PlannedOrder],
        now: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn unsettled_orders(
        &self,
        run_id: i64,
    ) -> impl Future<Output = Result<Vec<StoredOrder>, StoreError>> + Send;
    fn update_order(
        &self,
        client_order_id: &str,
        status: &OrderState,
        broker_order_id: Option<&str>,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn record_fill(
        &self,
        client_order_id: &str,
        qty: f64,
        price: f64,
        fee: f64,
        filled_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn record_equity(
        &self,
        run_id: i64,
        t: i64,
        cash: f64,
        equity: f64,
        positions: &BTreeMap<String, f64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn last_positions(
        &self,
        run_id: i64,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, f64>>, StoreError>> + Send;
    fn order_known(
        &self,
        client_order_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn run_counts(&self, run_id: i64)
    -> impl Future<Output = Result<RunCounts, StoreError>> + Send;
    fn fills_of_run(
        &self,
        run_id: i64,
    ) -> impl Future<Output = Result<Vec<FillRow>, StoreError>> + Send;
    fn decisions_of_run(
        &self,
        run_id: i64,
    ) -> impl Future<Output = Result<Vec<DecisionRow>, StoreError>> + Send;
    /// Records that run `run_id` adopted an ensemble version: its members
    /// once per version (a version adopted again keeps its first record),
    /// and the adoption, together or not at all. Refused, with nothing
    /// written: an empty version, no members, a score that is not finite,
    /// a version already stored with other members, and (SQLite, foreign
    /// keys on) a run that does not exist.
    fn record_adoption(
        &self,
        run_id: i64,
        adoption: &EnsembleAdoption,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The adoptions of a run, oldest first, each with its version's members.
    fn adoptions_of_run(
        &self,
        run_id: i64,
    ) -> impl Future<Output = Result<Vec<EnsembleAdoption>, StoreError>> + Send;
}

/// One order as the memory recorder holds it.
struct MemoryOrder {
    run_id: i64,
    row: StoredOrder,
    filled: Option<FillRow>,
}

#[derive(Default)]
struct Memory {
    decisions: BTreeMap<(i64, i64), DecisionRow>,
    orders: Vec<MemoryOrder>,
    order_index: HashMap<String, usize>,
    /// Indices of orders whose status may still change, oldest first.
    unsettled: Vec<usize>,
    fills: Vec<(i64, FillRow)>,
    equity: BTreeMap<(i64, i64), BTreeMap<String, f64>>,
    /// Members per ensemble version, as first recorded.
    versions: HashMap<String, Vec<VersionMember>>,
    /// Adoptions in the order recorded, with their run.
    adoptions: Vec<(i64, EnsembleAdoption)>,
}

/// The engine's records in memory, for backtests: nothing is written to
/// disk, and nothing outlives the process.
#[derive(Default)]
pub struct MemoryRecorder {
    memory: Mutex<Memory>,
}

impl MemoryRecorder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut guard = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

fn json<T: serde::Serialize>(value: &T, fallback: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| fallback.to_owned())
}

impl Recorder for MemoryRecorder {
    async fn load_window(
        &self,
        symbols: &[Symbol],
        hours: u32,
    ) -> Result<HistoryWindow, StoreError> {
        Ok(HistoryWindow::new(symbols, hours))
    }

    async fn insert_bars(
        &self,
        symbol: &Symbol,
        bars: &[Bar],
        now: DateTime<Utc>,
    ) -> Result<InsertReport, StoreError> {
        crate::store::validate_bars(symbol, bars, now)?;
        Ok(InsertReport {
            inserted: bars.len() as u64,
            ..InsertReport::default()
        })
    }

    async fn decided(&self, run_id: i64, bar_t: i64) -> Result<bool, StoreError> {
        Ok(self.with(|m| m.decisions.contains_key(&(run_id, bar_t))))
    }

    async fn record_decision(
        &self,
        run_id: i64,
        decision: &DecisionRecord,
        orders: &[PlannedOrder],
        _now: i64,
    ) -> Result<i64, StoreError> {
        let row = DecisionRow {
            bar_t: decision.bar_t,
            aggregate: json(&decision.aggregate, "null"),
            target_weights: json(&decision.target_weights, "null"),
            skipped_reason: decision.skipped_reason.clone(),
            ensemble_version: decision.ensemble_version.clone(),
        };
        Ok(self.with(|m| {
            m.decisions.insert((run_id, decision.bar_t), row);
            for o in orders {
                let i = m.orders.len();
                m.order_index.insert(o.client_order_id.clone(), i);
                m.unsettled.push(i);
                m.orders.push(MemoryOrder {
                    run_id,
                    row: StoredOrder {
                        client_order_id: o.client_order_id.clone(),
                        symbol: o.symbol.clone(),
                        side: o.side,
                        notional: o.notional,
                        qty: o.qty,
                        status: OrderState::Planned,
                        broker_order_id: None,
                        bar_t: Some(decision.bar_t),
                    },
                    filled: None,
                });
            }
            i64::try_from(m.decisions.len()).unwrap_or(i64::MAX)
        }))
    }

    async fn unsettled_orders(&self, run_id: i64) -> Result<Vec<StoredOrder>, StoreError> {
        Ok(self.with(|m| {
            m.unsettled
                .iter()
                .map(|i| &m.orders[*i])
                .filter(|o| o.run_id == run_id)
                .map(|o| o.row.clone())
                .collect()
        }))
    }

    async fn update_order(
        &self,
        client_order_id: &str,
        status: &OrderState,
        broker_order_id: Option<&str>,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some(&i) = m.order_index.get(client_order_id) {
                let row = &mut m.orders[i].row;
                row.status = status.clone();
                if let Some(id) = broker_order_id {
                    row.broker_order_id = Some(id.to_owned());
                }
                if !status.is_unsettled() {
                    m.unsettled.retain(|u| *u != i);
                }
            }
        });
        Ok(())
    }

    async fn record_fill(
        &self,
        client_order_id: &str,
        qty: f64,
        price: f64,
        fee: f64,
        _filled_at: i64,
    ) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some(&i) = m.order_index.get(client_order_id)
                && m.orders[i].filled.is_none()
            {
                m.orders[i].filled = Some(FillRow { qty, price, fee });
                let run_id = m.orders[i].run_id;
                m.fills.push((run_id, FillRow { qty, price, fee }));
            }
        });
        Ok(())
    }

    async fn record_equity(
        &self,
        run_id: i64,
        t: i64,
        _cash: f64,
        _equity: f64,
        positions: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        self.with(|m| m.equity.insert((run_id, t), positions.clone()));
        Ok(())
    }

    async fn last_positions(
        &self,
        run_id: i64,
    ) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        Ok(self.with(|m| {
            m.equity
                .range((run_id, i64::MIN)..=(run_id, i64::MAX))
                .next_back()
                .map(|(_, p)| p.clone())
        }))
    }

    async fn order_known(&self, client_order_id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|m| m.order_index.contains_key(client_order_id)))
    }

    async fn run_counts(&self, run_id: i64) -> Result<RunCounts, StoreError> {
        Ok(self.with(|m| {
            let decisions = m
                .decisions
                .range((run_id, i64::MIN)..=(run_id, i64::MAX))
                .map(|(_, d)| d);
            let (mut decided, mut skipped) = (0, 0);
            for d in decisions {
                if d.skipped_reason.is_some() {
                    skipped += 1;
                } else {
                    decided += 1;
                }
            }
            let orders = m.orders.iter().filter(|o| o.run_id == run_id);
            RunCounts {
                decisions: decided,
                skipped,
                orders: orders.clone().count() as u64,
                filled: orders
                    .filter(|o| o.row.status == OrderState::Filled)
                    .count() as u64,
                fills: m.fills.iter().filter(|(r, _)| *r == run_id).count() as u64,
            }
        }))
    }

    async fn fills_of_run(&self, run_id: i64) -> Result<Vec<FillRow>, StoreError> {
        Ok(self.with(|m| {
            m.fills
                .iter()
                .filter(|(r, _)| *r == run_id)
                .map(|(_, f)| *f)
                .collect()
        }))
    }

    async fn decisions_of_run(&self, run_id: i64) -> Result<Vec<DecisionRow>, StoreError> {
        Ok(self.with(|m| {
            m.decisions
                .range((run_id, i64::MIN)..=(run_id, i64::MAX))
                .map(|(_, d)| d.clone())
                .collect()
        }))
    }

    async fn record_adoption(
        &self,
        run_id: i64,
        adoption: &EnsembleAdoption,
    ) -> Result<(), StoreError> {
        adoption.check()?;
        self.with(|m| {
            match m.versions.get(&adoption.version) {
                Some(stored) if *stored != adoption.members => {
                    return Err(adoption.members_differ(stored));
                }
                Some(_) => {}
                None => {
                    m.versions
                        .insert(adoption.version.clone(), adoption.members.clone());
                }
            }
            m.adoptions.push((run_id, adoption.clone()));
            Ok(())
        })
    }

    async fn adoptions_of_run(&self, run_id: i64) -> Result<Vec<EnsembleAdoption>, StoreError> {
        Ok(self.with(|m| {
            m.adoptions
                .iter()
                .filter(|(r, _)| *r == run_id)
                .map(|(_, a)| EnsembleAdoption {
                    members: m
                        .versions
                        .get(&a.version)
                        .cloned()
                        .unwrap_or_else(|| a.members.clone()),
                    ..a.clone()
                })
                .collect()
        }))
    }
}
