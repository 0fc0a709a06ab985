//! Helpers shared by the engine's in-process tests: the repository's files,
//! a clock on which every wait passes at once, and ensembles loaded from
//! real model files.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use trader_core::{Aggregate, Bar, Clock, ComputeDevice, DType, HOUR_SECS, ManualClock, Symbol};
use trader_ensemble::{Ensemble, EnsembleCatalog, ForwardMode, LoadOptions};

pub const H: i64 = HOUR_SECS;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The three symbols every shipped set and model trades.
pub fn symbols() -> Vec<Symbol> {
    ["BTC/USD", "ETH/USD", "LTC/USD"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The bars of a recorded set under the repository (`tests/fixtures/slice`,
/// `data/coinbase_2017_2018`) whose hour `keep` accepts, parsed by the
/// core's line parser.
pub fn recorded(dir: &str, keep: impl Fn(i64) -> bool) -> BTreeMap<Symbol, Vec<Bar>> {
    symbols()
        .into_iter()
        .map(|s| {
            let file = repo()
                .join(dir)
                .join(format!("{}.csv", s.as_str().replace('/', "")));
            let bars = fs_err::read_to_string(file)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| Bar::from_recorded_line(l).unwrap())
                .filter(|b| keep(b.t))
                .collect();
            (s, bars)
        })
        .collect()
}

/// A clock on which every wait passes at once: asking how long to wait
/// for `d` moves the clock by `d` and answers zero.
pub struct SteppingClock(ManualClock);

impl SteppingClock {
    pub fn at(t: i64) -> Arc<Self> {
        Arc::new(SteppingClock(ManualClock::new(
            DateTime::from_timestamp(t, 0).unwrap(),
        )))
    }

    pub fn advance(&self, secs: i64) {
        let next = self.0.now().timestamp() + secs;
        self.0.set(DateTime::from_timestamp(next, 0).unwrap());
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<chrono::Utc> {
        self.0.now()
    }

    fn real_duration(&self, simulated: Duration) -> Duration {
        self.advance(simulated.as_secs().cast_signed());
        Duration::ZERO
    }
}

/// A live engine of the `lean` profile over [`symbols`], with `history_hours`
/// of history and orders from 10 USD (the tests' trading rules).
pub async fn lean_engine<B: trader_core::Broker, R: trader_store::Recorder>(
    broker: B,
    records: R,
    ensemble: Ensemble,
    history_hours: u32,
    run_id: i64,
) -> trader_engine::Engine<B, R> {
    let symbols = symbols();
    trader_engine::Engine::new(
        broker,
        records,
        ensemble,
        trader_engine::EngineSetup {
            profile: "lean",
            mode: trader_store::RunMode::Live,
            symbols: &symbols,
            history_hours,
            run_id,
            trading: trader_config::TradingSettings {
                min_trade_notional: 10.0,
                ..trader_config::TradingSettings::default()
            },
        },
    )
    .await
    .unwrap()
}

/// The best `top_n` members of the ensemble in `dir`, f32 on the CPU, mean.
pub fn ensemble(dir: &Path, top_n: usize) -> Ensemble {
    Ensemble::load(
        &EnsembleCatalog::open(dir).unwrap(),
        LoadOptions {
            top_n,
            dtype: DType::F32,
            device: ComputeDevice::Cpu,
            aggregate: Aggregate::Mean,
            mode: ForwardMode::default_for(DType::F32),
        },
    )
    .unwrap()
}

/// Where an injected fault strikes a call: before it reaches the store or
/// the broker (the call is lost), or after it took effect (its answer is
/// lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call never returns, as in a process that died there: the test
    /// drops the engine when [`Tripwire::tripped`] resolves.
    Hang(When),
    /// The call answers an error: a broker error of this kind, or for a
    /// store call an I/O error (the engine stops on it).
    Fail(When, trader_core::ErrorKind),
}

/// One call through a [`Faulty`] wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its index among every call through wrappers sharing the tripwire.
    pub index: usize,
    /// How many times [`Tripwire::mark`] was called before it (the live
    /// loop's polls, when marked from its `observe`).
    pub poll: usize,
    /// The method and what it was about (`place lean-20180305T0100Z-BTC/USD`).
    pub label: String,
}

/// Counts and logs the calls of the [`Faulty`] wrappers that share it and
/// injects faults at the chosen call indexes.
#[derive(Default)]
pub struct Tripwire {
    calls: std::sync::atomic::AtomicUsize,
    polls: std::sync::atomic::AtomicUsize,
    log: std::sync::Mutex<Vec<Step>>,
    faults: std::sync::Mutex<BTreeMap<usize, Fault>>,
    /// Faults for the next call whose label starts with the text, each
    /// used once.
    by_label: std::sync::Mutex<Vec<(String, Fault)>>,
    tripped: tokio::sync::Notify,
}

impl Tripwire {
    /// A tripwire that only counts.
    pub fn new() -> Arc<Self> {
        Arc::new(Tripwire::default())
    }

    /// A tripwire that injects `fault` at call `index`.
    pub fn at(index: usize, fault: Fault) -> Arc<Self> {
        let t = Tripwire::default();
        t.faults.lock().unwrap().insert(index, fault);
        Arc::new(t)
    }

    /// Also injects `fault` at call `index`.
    pub fn add(&self, index: usize, fault: Fault) {
        self.faults.lock().unwrap().insert(index, fault);
    }

    /// Also injects `fault` at the next call whose label starts with
    /// `prefix` (`"place"`, `"account"`), once; several for one prefix
    /// strike its next calls in turn.
    pub fn on(&self, prefix: &str, fault: Fault) {
        self.by_label
            .lock()
            .unwrap()
            .push((prefix.to_owned(), fault));
    }

    /// Counts a poll (call it from the live loop's `observe`).
    pub fn mark(&self) {
        self.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every call so far.
    pub fn log(&self) -> Vec<Step> {
        self.log.lock().unwrap().clone()
    }

    /// Resolves once a [`Fault::Hang`] struck.
    pub async fn tripped(&self) {
        self.tripped.notified().await;
    }

    /// Runs `call` as call number `calls` (with the fault there, if any).
    async fn step<T>(
        &self,
        label: impl FnOnce() -> String,
        call: impl Future<Output = T>,
        fail: impl FnOnce(trader_core::ErrorKind) -> T,
    ) -> T {
        let index = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let label = label();
        let by_label = {
            let mut pending = self.by_label.lock().unwrap();
            pending
                .iter()
                .position(|(prefix, _)| label.starts_with(prefix.as_str()))
                .map(|i| pending.remove(i).1)
        };
        self.log.lock().unwrap().push(Step {
            index,
            poll: self.polls.load(std::sync::atomic::Ordering::SeqCst),
            label,
        });
        let fault = self
            .faults
            .lock()
            .unwrap()
            .get(&index)
            .copied()
            .or(by_label);
        match fault {
            None => call.await,
            Some(Fault::Hang(when)) => {
                if when == When::After {
                    drop(call.await);
                }
                self.tripped.notify_one();
                std::future::pending().await
            }
            Some(Fault::Fail(when, kind)) => {
                if when == When::After {
                    drop(call.await);
                }
                fail(kind)
            }
        }
    }
}

/// A [`Recorder`](trader_store::Recorder) or [`Broker`](trader_core::Broker)
/// whose calls go through a [`Tripwire`].
pub struct Faulty<T> {
    pub inner: T,
    pub trip: Arc<Tripwire>,
}

impl<T> Faulty<T> {
    pub fn new(inner: T, trip: Arc<Tripwire>) -> Self {
        Faulty { inner, trip }
    }
}

fn market_fault(kind: trader_core::ErrorKind, request: &str) -> trader_core::MarketError {
    trader_core::MarketError::new(kind, request, "injected fault")
}

fn store_fault() -> trader_store::StoreError {
    trader_store::StoreError::LockFile {
        path: PathBuf::from("injected"),
        source: std::io::Error::other("injected fault"),
    }
}

impl<B: trader_core::Broker> trader_core::Broker for Faulty<B> {
    async fn account(&self) -> Result<trader_core::AccountState, trader_core::MarketError> {
        self.trip
            .step(
                || "account".to_owned(),
                self.inner.account(),
                |k| Err(market_fault(k, "account")),
            )
            .await
    }

    async fn positions(&self) -> Result<Vec<trader_core::Position>, trader_core::MarketError> {
        self.trip
            .step(
                || "positions".to_owned(),
                self.inner.positions(),
                |k| Err(market_fault(k, "positions")),
            )
            .await
    }

    async fn open_orders(&self) -> Result<Vec<trader_core::Order>, trader_core::MarketError> {
        self.trip
            .step(
                || "open_orders".to_owned(),
                self.inner.open_orders(),
                |k| Err(market_fault(k, "open orders")),
            )
            .await
    }

    async fn order_by_client_id(
        &self,
        id: &str,
    ) -> Result<Option<trader_core::Order>, trader_core::MarketError> {
        self.trip
            .step(
                || format!("order_by_client_id {id}"),
                self.inner.order_by_client_id(id),
                |k| Err(market_fault(k, "order by client id")),
            )
            .await
    }

    async fn place(
        &self,
        order: &trader_core::OrderRequest,
    ) -> Result<trader_core::Placement, trader_core::MarketError> {
        self.trip
            .step(
                || format!("place {}", order.client_order_id),
                self.inner.place(order),
                |k| Err(market_fault(k, "place")),
            )
            .await
    }
}

impl<R: trader_store::Recorder> trader_store::Recorder for Faulty<R> {
    async fn load_window(
        &self,
        symbols: &[Symbol],
        hours: u32,
    ) -> Result<trader_store::HistoryWindow, trader_store::StoreError> {
        // Read once, when the engine is built: not a step of an hour.
        self.inner.load_window(symbols, hours).await
    }

    async fn insert_bars(
        &self,
        symbol: &Symbol,
        bars: &[Bar],
        now: DateTime<chrono::Utc>,
    ) -> Result<trader_store::InsertReport, trader_store::StoreError> {
        self.trip
            .step(
                || format!("insert_bars {symbol}"),
                self.inner.insert_bars(symbol, bars, now),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn decided(&self, run_id: i64, bar_t: i64) -> Result<bool, trader_store::StoreError> {
        self.trip
            .step(
                || "decided".to_owned(),
                self.inner.decided(run_id, bar_t),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn record_decision(
        &self,
        run_id: i64,
        decision: &trader_store::DecisionRecord,
        orders: &[trader_store::PlannedOrder],
        now: i64,
    ) -> Result<i64, trader_store::StoreError> {
        self.trip
            .step(
                || format!("record_decision ({} orders)", orders.len()),
                self.inner.record_decision(run_id, decision, orders, now),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn unsettled_orders(
        &self,
        run_id: i64,
    ) -> Result<Vec<trader_store::StoredOrder>, trader_store::StoreError> {
        self.trip
            .step(
                || "unsettled_orders".to_owned(),
                self.inner.unsettled_orders(run_id),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn update_order(
        &self,
        client_order_id: &str,
        status: &trader_store::OrderState,
        broker_order_id: Option<&str>,
        now: i64,
    ) -> Result<(), trader_store::StoreError> {
        self.trip
            .step(
                || format!("update_order {client_order_id} {}", status.as_str()),
                self.inner
                    .update_order(client_order_id, status, broker_order_id, now),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn record_fill(
        &self,
        client_order_id: &str,
        qty: f64,
        price: f64,
        fee: f64,
        filled_at: i64,
    ) -> Result<(), trader_store::StoreError> {
        self.trip
            .step(
                || format!("record_fill {client_order_id}"),
                self.inner
                    .record_fill(client_order_id, qty, price, fee, filled_at),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn record_equity(
        &self,
        run_id: i64,
        t: i64,
        cash: f64,
        equity: f64,
        positions: &BTreeMap<String, f64>,
    ) -> Result<(), trader_store::StoreError> {
        self.trip
            .step(
                || "record_equity".to_owned(),
                self.inner.record_equity(run_id, t, cash, equity, positions),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn last_positions(
        &self,
        run_id: i64,
    ) -> Result<Option<BTreeMap<String, f64>>, trader_store::StoreError> {
        self.trip
            .step(
                || "last_positions".to_owned(),
                self.inner.last_positions(run_id),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn order_known(&self, client_order_id: &str) -> Result<bool, trader_store::StoreError> {
        self.trip
            .step(
                || format!("order_known {client_order_id}"),
                self.inner.order_known(client_order_id),
                |_| Err(store_fault()),
            )
            .await
    }

    async fn run_counts(
        &self,
        run_id: i64,
    ) -> Result<trader_store::RunCounts, trader_store::StoreError> {
        self.inner.run_counts(run_id).await
    }

    async fn fills_of_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<trader_store::FillRow>, trader_store::StoreError> {
        self.inner.fills_of_run(run_id).await
    }

    async fn decisions_of_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<trader_store::DecisionRow>, trader_store::StoreError> {
        self.inner.decisions_of_run(run_id).await
    }

    async fn record_adoption(
        &self,
        run_id: i64,
        adoption: &trader_store::EnsembleAdoption,
    ) -> Result<(), trader_store::StoreError> {
        self.inner.record_adoption(run_id, adoption).await
    }

    async fn adoptions_of_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<trader_store::EnsembleAdoption>, trader_store::StoreError> {
        self.inner.adoptions_of_run(run_id).await
    }
}

/// Every order row of the store of `db` ([`store_at`]), by id:
/// (client_order_id, status, broker_order_id), read with the `sqlite3` or
/// `psql` shell (the store's API lists only unsettled orders).
pub fn stored_orders(db: &Path) -> Vec<(String, String, String)> {
    let sql =
        "SELECT client_order_id, status, COALESCE(broker_order_id, '') FROM orders ORDER BY id";
    let out = match trader_config::test_pg_url() {
        Some(server) => std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-F", "|", "-c", sql])
            .arg(trader_store::scratch_database_url(db, &server))
            .output()
            .unwrap(),
        None => std::process::Command::new("sqlite3")
            .args(["-readonly", "-cmd", ".timeout 5000", "-separator", "|"])
            .arg(db)
            .arg(sql)
            .output()
            .unwrap(),
    };
    assert!(
        out.status.success(),
        "reading the orders: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '|');
            (
                f.next().unwrap().to_owned(),
                f.next().unwrap().to_owned(),
                f.next().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The store a test's SQLite `path` stands for: the file, or a database of
/// its own on the PostgreSQL server of `TRADER_TEST_PG_URL` (CI runs these
/// tests on both).
pub async fn store_at(path: &std::path::Path) -> trader_core::StoreLocation {
    trader_store::scratch_location(path, trader_config::test_pg_url().as_deref())
        .await
        .unwrap_or_else(|e| {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            panic!("the test's store: {e}: {}", cause.unwrap_or_default())
        })
}
