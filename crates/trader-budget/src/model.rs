//! The verdict: demand + co-tenants against the envelope, and the fixes.

use serde::Serialize;
use trader_core::{ByteSize, ComputeDevice, DType, DemandTerm, HISTORY_BYTES_PER_SYMBOL_HOUR};

use crate::BudgetError;

/// Peak RSS of the release `trader` binary running inference, less the terms
/// this model adds for the model itself: `scripts/bench_budget.sh` (before
/// it `scripts/measure_runtime_base.sh`, by hand) runs `trader ensemble
/// infer` on one 25,539-parameter fixture member (median of 5) and subtracts
/// its weights, load transient, activations and threads (2.31 MB): 13.40 MB
/// peak, 11.09 MB base on 2026-11-29 on the CI machine kind (shared 2 vCPU
/// VM, 24 GiB), the release profile's fat LTO build with the PostgreSQL
/// store linked (19.9 MB binary; 10.41 MB before it, 18.3 MB binary),
/// freshly copied (a binary read back from disk peaks 1-2.5 MB lower: its
/// code pages are not all in the page cache, so fewer are mapped around each
/// fault); rounded up. It was 11.39 MB on the default release profile (26.1
/// MB binary) and 8.48 MB on 2026-11-27, before the binary grew (a second
/// sitting on the fat LTO build: 10.22 MB). Re-measure whenever the binary
/// links something large or the release profile changes. Re-measured after
/// the f32 CPU kernels (issue 18, goal 3; 20.1 MB binary): 10.82 MB, then
/// 10.64 MB with the replay's trim (same binary size); rounded up. Then
/// 10.13 MB (18.5 MB binary) once the dependencies off the inference path
/// were optimized for size (issue 18, round 4: 1.5 MB fewer code pages),
/// and 10.28 MB in a second sitting; rounded up.
pub const RUNTIME_BASE_RSS: u64 = 10_300_000;
/// What the trading loop of `trader run` adds beyond the runtime base, the
/// model, the history and the store: tokio's worker threads, the HTTP
/// client's pools, the SQLite connection and, without Alpaca keys, the
/// embedded simulator holding the recorded set (3 symbols of
/// `data/coinbase_2017_2018`). `scripts/bench_budget.sh`: median peak RSS
/// of a 7-day replay of one [64] member, f32, 72 h (26.82 MB) minus every
/// other term, the store cache counted at the store's size at the end
/// (0.15 MB: SQLite caches no more pages than the file has) instead of
/// [`STORE_CACHE_BYTES`]: 13.13 MB, 2026-11-29, CI machine kind, the
/// release profile's fat LTO build with the PostgreSQL store linked, freshly
/// copied (12.62 MB before it; 13.92 MB on the default profile); rounded up.
/// On a PostgreSQL store the same replay peaks 1.5 MB lower (no SQLite
/// page cache in the process: BENCHMARKS.md, issue 20): an upper bound there. Against Alpaca (no
/// embedded simulator) it is an upper bound. Re-measured after the f32 CPU
/// kernels (issue 18, goal 3): 12.75 MB; then 11.13 MB once the embedded
/// replay kept only the bars it serves (the recorded set, 1.6 MB, freed
/// before the ensemble loads; issue 18, goal 1), plus 0.27 MB because the
/// grid's row 4 ran up to 0.26 MB above its median. Then 9.88 MB (issue
/// 18, round 4: dependencies optimized for size, and no more busy loop of
/// the directory watch between hours, whose allocations the loop held), and
/// 10.36 MB in a second sitting: 10.2, between the two (the store cache's
/// 1.9 MB of headroom on the grid's small rows covers the difference).
pub const TRADING_LOOP_RSS: u64 = 10_200_000;
/// The part of [`TRADING_LOOP_RSS`] that `trader run` allocates after the
/// ensemble has loaded, into memory the load freed: the trading-loop term
/// is reduced by it, up to the load transient (peaks do not add: the load
/// is over before the loop's later allocations). Fitted on
/// `scripts/bench_budget.sh`'s grid, 2026-11-29, CI machine kind: with the
/// whole loop counted beside the load transient, the rows whose transient
/// is 4 MB or more (the reference size, [2048, 1024]) were predicted
/// 1.05-1.14 while the small ones were 1.02-1.06; the [2048, 1024] rows
/// bound it at ~4 MB (row 7: 88.5 MB predicted with the whole loop, 82.5
/// measured, of which 1.9 MB is the store cache's headroom). 3 MB keeps
/// every row within [1.0, 1.1]; not isolated on its own.
pub const LOOP_REUSES_LOAD_RSS: u64 = 3_000_000;
/// What `trader backtest` adds beyond the runtime base, the model, its batched
/// projection, its bars and its records: the recorded set read from CSV, the
/// in-process broker and engine. `scripts/bench_budget.sh`: median peak RSS of
/// a 720-hour backtest of one [64] member, f32, 72 h (21.99 MB) minus every
/// other term: 5.98 MB, 2026-11-29, CI machine kind, the release profile's fat
/// LTO build with the PostgreSQL store linked, freshly copied (6.51 MB before
/// it, with the runtime base 0.6 MB lower; 7.19 MB on the default profile);
/// rounded up, plus 1.9 MB because the largest projections of the grid (rows 8
/// and 9: 16 x [2048, 1024], 203 and 381 MB) peaked 1.2-1.7 MB above their
/// terms (not isolated; gemm's packing buffers are the likely owner). The
/// smallest backtests (row 1, 22 MB) bound the margin from above: with 2.2 MB
/// they would be predicted 1.10. Re-measured after the f32 CPU kernels
/// (issue 18, goal 3): 6.14 MB, then 6.27 MB with the runtime base 0.4 MB
/// lower: 6.4 + the same 1.9 MB. Then 6.02 and 6.46 MB in two sittings with
/// dependencies optimized for size (issue 18, round 4): 6.3 + the same 1.9 MB.
pub const BACKTEST_LOOP_RSS: u64 = 8_200_000;
/// Resident bytes of `trader run` per symbol and hour of history kept: the
/// bars are 48 B (`trader_core::HISTORY_BYTES_PER_SYMBOL_HOUR`, which this
/// term counted until 2026-11-29), but `trader run` holds 30-45x that (not
/// traced to one allocation yet: the backfill's requests through the HTTP
/// client and the live path's feature state are the suspects; the
/// backtest, fed the same bars in process, shows no such slope).
/// `scripts/bench_budget.sh`: the slope of the median peak RSS of the same
/// 7-day replay at 72 h and 720 h of history (one [64] member, 3 symbols):
/// 1.4-2.2 KB per symbol-hour over three sittings on 2026-11-29 (one
/// symbol: 2.3 KB), then 1.7 and 2.0 KB on the fat LTO build, CI machine
/// kind; the 720-hour rows of the grid are within 10 % with 1.6 KB. After
/// the f32 CPU kernels (issue 18, goal 3): 1.44 KB, then 1.73 KB with the
/// replay's trim (the slope is the difference of two noisy peaks): 1.8 KB.
/// Then 1.40, 1.34 and 1.37 KB in three sittings of issue 18's round 4 (the
/// size-optimized build, loads in place): 1.6 KB, which keeps the grid's
/// small 720-hour row (row 3) under 1.10 and still 0.2 KB above the largest
/// of them.
pub const RUN_HISTORY_BYTES_PER_SYMBOL_HOUR: u64 = 1_600;
/// Resident bytes per decided hour of a backtest's in-memory records
/// (`MemoryRecorder`: decisions, orders, equity) beyond its bars.
/// `scripts/bench_budget.sh`: the slope of the median peak RSS of one [64]
/// member's backtest over 720 and 2,880 decided hours: 1,414 B,
/// 2026-11-29, CI machine kind; 1,496 and 1,554 B after the f32 CPU
/// kernels (issue 18, goal 3); rounded up.
pub const BACKTEST_RECORD_BYTES_PER_HOUR: u64 = 1_600;
/// Decided hours the report's backtest section assumes (a month); the
/// records term scales with them ([`backtest_terms`] takes the real count).
pub const BACKTEST_REPORT_HOURS: u32 = 720;
/// Hours per batched block of `trader backtest` (its `--block-hours`
/// default): the projection term is sized for it.
pub const BACKTEST_BLOCK_HOURS: u32 = 256;
/// Per-thread resident cost (stack pages touched plus allocator arena), ~1 MB
/// per thread as measured for candle 0.11 on this machine kind. Not isolated
/// by `scripts/bench_budget.sh` (every row runs 1 inference thread, and one
/// more candle thread adds nothing measurable to a live matvec); the main
/// thread's and the inference thread's 2 MB are subtracted wherever the
/// constants above were measured, so they cancel at 1 thread.
pub const THREAD_RSS: u64 = 1_000_000;
/// SQLite's default page cache, `cache_size = -2000` (2000 KiB), one
/// connection: an upper bound. The cache holds no more pages than the store
/// has: 0.14 MB after a week's replay, growing ~4 KB a day
/// (`scripts/bench_budget.sh` measures the store's size), so a fresh store
/// reaches it after about a year; the short replays of the grid are
/// predicted ~1.9 MB high because of it.
pub const STORE_CACHE_BYTES: u64 = 2_048_000;
/// VRAM of one CUDA context: 300-500 MB per process measured for candle 0.11;
/// the upper end, so the verdict errs on the side of refusing.
pub const CUDA_CONTEXT_VRAM: u64 = 500_000_000;
/// The CUDA allocator's rounding and fragmentation, percent of weights + activations.
pub const ALLOCATOR_SLACK_PERCENT: u64 = 10;
/// The co-tenant that `--workers` counts.
pub const WORKER_TENANT: &str = "training-worker";
/// Largest `workers` knob: training workers on one machine.
pub const MAX_WORKERS: u32 = 10_000;
/// Largest `top_n` knob: members of one ensemble.
pub const MAX_TOP_N: u32 = 1_000;
/// Largest `history_hours` knob: ten years of hourly bars.
pub const MAX_HISTORY_HOURS: u32 = 87_600;

/// The knobs a user turns; `trader budget`'s what-if flags override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Knobs {
    /// Count of the `training-worker` tenant (None: as the host file says).
    pub workers: Option<u32>,
    pub top_n: u32,
    pub history_hours: u32,
    pub dtype: DType,
    pub device: ComputeDevice,
}

impl Knobs {
    /// Checks each knob against its range: `workers` 0..=[`MAX_WORKERS`],
    /// `top_n` 1..=[`MAX_TOP_N`], `history_hours` 1..=[`MAX_HISTORY_HOURS`].
    ///
    /// # Errors
    /// [`BudgetError::KnobOutOfRange`] naming the first knob out of range.
    pub fn check(&self) -> Result<(), BudgetError> {
        let checks = [
            ("workers", self.workers.unwrap_or(0), 0, MAX_WORKERS),
            ("top_n", self.top_n, 1, MAX_TOP_N),
            ("history_hours", self.history_hours, 1, MAX_HISTORY_HOURS),
        ];
        for (knob, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(BudgetError::KnobOutOfRange {
                    knob,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}

/// A co-tenant kind: `count` processes of `ram_each` / `vram_each`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub name: String,
    pub count: u32,
    pub ram_each: u64,
    pub vram_each: u64,
}

/// One resource's limit: the machine total, where it came from, and the
/// percent all processes together may use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limit {
    pub machine_total: u64,
    pub source: String,
    pub allowed_percent: f64,
}

impl Limit {
    /// Bytes all processes together may use.
    #[must_use]
    pub fn allowed(&self) -> u64 {
        (self.machine_total as f64 * self.allowed_percent / 100.0).floor() as u64
    }
}

/// The machine: RAM always, VRAM when known (declared or found by NVML).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub ram: Limit,
    pub vram: Option<Limit>,
    /// Why VRAM is unknown, when it is.
    pub vram_unknown_reason: Option<String>,
}

/// The ensemble's terms for (`top_n`, dtype, device): the one source of truth
/// for weights and activations is trader-ensemble; the CLI passes it in.
pub type EnsembleDemandFn<'a> =
    dyn Fn(u32, DType, ComputeDevice) -> Result<Vec<DemandTerm>, String> + 'a;

/// A backtest's batched projection for (`top_n`, dtype, rows): bytes held
/// at its peak (see [`backtest_terms`]).
pub type ProjectionFn<'a> = dyn Fn(u32, DType, u64) -> u64 + 'a;

/// What the budgeter needs to know about the trader besides the knobs.
pub struct TraderPlan<'a> {
    pub symbols: u32,
    /// Inference threads of the profile.
    pub threads: u32,
    /// The longest history any loaded member needs (its lookback + longest
    /// feature window - 1): history is never suggested below it.
    pub min_history_hours: u32,
    /// Members available in the ensemble.
    pub max_top_n: u32,
    pub ensemble: &'a EnsembleDemandFn<'a>,
    /// The batched projection of a backtest (None: no backtest budget).
    pub projection: Option<&'a ProjectionFn<'a>>,
}

/// `fits` or `refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Fits,
    Refused,
}

/// One resource's line of totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceLine {
    pub trader: u64,
    pub tenants: u64,
    pub total: u64,
    /// Bytes allowed (machine total x allowed percent); None when unknown.
    pub allowed: Option<u64>,
    /// Total as a percent of the machine total.
    pub percent_of_machine: Option<f64>,
    /// The co-tenants alone, as a percent of the machine total.
    pub tenants_percent_of_machine: Option<f64>,
    /// allowed - total (negative = deficit).
    pub headroom: Option<i64>,
}

/// One co-tenant row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantLine {
    pub name: String,
    pub count: u32,
    pub ram: u64,
    pub vram: u64,
}

/// A change that would make the configuration fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// The flag, ready to paste: `--workers 7`.
    pub flag: String,
    /// What it gives up, in words.
    pub effect: String,
    pub ram_percent: f64,
    pub vram_percent: Option<f64>,
}

/// The full budget of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub knobs: Knobs,
    pub trader_terms: Vec<DemandTerm>,
    pub tenants: Vec<TenantLine>,
    pub envelope: Envelope,
    pub ram: ResourceLine,
    pub vram: ResourceLine,
    /// Why it was refused, one line per resource.
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub fixes: Vec<Fix>,
    /// What a swap of a same-sized ensemble adds (a profile with `reload =
    /// "on-change"`; not in the totals above).
    pub swap_transient: Option<DemandTerm>,
    /// The same profile's `trader backtest` (default flags, over
    /// [`BACKTEST_REPORT_HOURS`]); not in the totals above.
    pub backtest: Option<BacktestBudget>,
}

/// The demand of `trader backtest` for a profile: its own terms (no trading
/// loop or store; a batched projection and in-memory records instead).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestBudget {
    /// Decided hours the records term counts.
    pub decided_hours: u32,
    /// Hours per batched block the projection term counts.
    pub block_hours: u32,
    pub terms: Vec<DemandTerm>,
    /// Sum of the terms' RAM.
    pub ram: u64,
}

impl Report {
    /// Why the same profile's `trader backtest` does not fit, when its own
    /// demand ([`Report::backtest`]: no trading loop or store, but the
    /// batched projection and the in-memory records) plus the co-tenants
    /// is over the RAM envelope, though the run may fit. None when it fits,
    /// or when the report has no backtest section or no RAM limit.
    #[must_use]
    pub fn backtest_refusal(&self) -> Option<String> {
        let backtest = self.backtest.as_ref()?;
        let allowed = self.ram.allowed?;
        let total = backtest.ram.saturating_add(self.ram.tenants);
        (total > allowed).then(|| {
            format!(
                "RAM: trader backtest needs {} (its own terms: {} decided hours in memory, {}-hour batched blocks) + co-tenants {} = {}, but {:.0} % of {} allows {} (short by {})",
                ByteSize(backtest.ram),
                backtest.decided_hours,
                backtest.block_hours,
                ByteSize(self.ram.tenants),
                ByteSize(total),
                self.envelope.ram.allowed_percent,
                ByteSize(self.envelope.ram.machine_total),
                ByteSize(allowed),
                ByteSize(total - allowed)
            )
        })
    }
}

fn runtime_terms(plan: &TraderPlan<'_>, knobs: &Knobs) -> Vec<DemandTerm> {
    let history = u64::from(knobs.history_hours)
        .saturating_mul(u64::from(plan.symbols))
        .saturating_mul(RUN_HISTORY_BYTES_PER_SYMBOL_HOUR);
    vec![
        runtime_base_term(),
        DemandTerm::new(
            "history",
            history,
            0,
            format!(
                "{} h x {} symbols x {RUN_HISTORY_BYTES_PER_SYMBOL_HOUR} B (measured, scripts/bench_budget.sh)",
                knobs.history_hours, plan.symbols
            ),
        ),
        DemandTerm::new(
            "store cache",
            STORE_CACHE_BYTES,
            0,
            "SQLite page cache, cache_size = -2000, 1 connection",
        ),
        DemandTerm::new(
            "trading loop",
            TRADING_LOOP_RSS,
            0,
            "tokio workers, HTTP client, SQLite, embedded simulator (BENCHMARKS.md)",
        ),
        threads_term(plan),
    ]
}

/// The ensemble's load transient (RAM), 0 without one.
fn load_transient(ensemble: &[DemandTerm]) -> u64 {
    ensemble
        .iter()
        .find(|t| t.component == "load transient")
        .map_or(0, |t| t.ram_bytes)
}

fn runtime_base_term() -> DemandTerm {
    DemandTerm::new(
        "runtime base",
        RUNTIME_BASE_RSS,
        0,
        "measured peak RSS of the binary, no model (scripts/bench_budget.sh)",
    )
}

fn threads_term(plan: &TraderPlan<'_>) -> DemandTerm {
    let threads = 1 + u64::from(plan.threads);
    DemandTerm::new(
        "threads",
        threads.saturating_mul(THREAD_RSS),
        0,
        format!(
            "{threads} threads (main + {} inference) x 1 MB",
            plan.threads
        ),
    )
}

/// The terms of `trader backtest` for `knobs` over `decided_hours`, with
/// the batched first layer in blocks of `block_hours`: the runtime base, the
/// ensemble's terms, the history's bars, the in-memory records
/// ([`BACKTEST_RECORD_BYTES_PER_HOUR`] per decided hour), the backtest loop
/// ([`BACKTEST_LOOP_RSS`]), the threads, and the projection beyond the load
/// transient: a block's projection runs after every member has loaded, so
/// the peak holds the larger of the two, never both.
///
/// # Errors
/// A knob outside its range, or the ensemble's demand cannot be computed.
pub fn backtest_terms(
    plan: &TraderPlan<'_>,
    knobs: &Knobs,
    decided_hours: u32,
    block_hours: u32,
) -> Result<Vec<DemandTerm>, BudgetError> {
    knobs.check()?;
    let ensemble =
        (plan.ensemble)(knobs.top_n, knobs.dtype, knobs.device).map_err(BudgetError::Demand)?;
    let load = load_transient(&ensemble);
    let rows = u64::from(block_hours.min(decided_hours));
    let projection = plan
        .projection
        .map_or(0, |f| f(knobs.top_n, knobs.dtype, rows));
    let bars = u64::from(knobs.history_hours)
        .saturating_add(u64::from(decided_hours))
        .saturating_mul(u64::from(plan.symbols))
        .saturating_mul(HISTORY_BYTES_PER_SYMBOL_HOUR);
    let mut terms = vec![runtime_base_term()];
    terms.extend(ensemble);
    let (ram, vram) = match knobs.device {
        ComputeDevice::Cpu => (projection.saturating_sub(load), 0),
        ComputeDevice::Cuda => (0, projection),
    };
    terms.extend([
        DemandTerm::new(
            "projection",
            ram,
            vram,
            format!(
                "{rows}-hour block: the first layers' market columns copied, their output and the block's inputs ({:.1} MB), beyond the load transient",
                projection as f64 / 1e6
            ),
        ),
        DemandTerm::new(
            "history",
            bars,
            0,
            format!(
                "({} + {decided_hours}) h x {} symbols x {HISTORY_BYTES_PER_SYMBOL_HOUR} B",
                knobs.history_hours, plan.symbols
            ),
        ),
        DemandTerm::new(
            "records",
            u64::from(decided_hours).saturating_mul(BACKTEST_RECORD_BYTES_PER_HOUR),
            0,
            format!("{decided_hours} decided hours x {BACKTEST_RECORD_BYTES_PER_HOUR} B in memory (measured)"),
        ),
        DemandTerm::new(
            "backtest loop",
            BACKTEST_LOOP_RSS,
            0,
            "recorded set, in-process broker and engine (scripts/bench_budget.sh)",
        ),
        threads_term(plan),
    ]);
    Ok(terms)
}

/// [`backtest_terms`] over [`BACKTEST_REPORT_HOURS`] in blocks of
/// [`BACKTEST_BLOCK_HOURS`], summed.
///
/// # Errors
/// As [`backtest_terms`].
pub fn backtest_budget(
    plan: &TraderPlan<'_>,
    knobs: &Knobs,
) -> Result<BacktestBudget, BudgetError> {
    let terms = backtest_terms(plan, knobs, BACKTEST_REPORT_HOURS, BACKTEST_BLOCK_HOURS)?;
    Ok(BacktestBudget {
        decided_hours: BACKTEST_REPORT_HOURS,
        block_hours: BACKTEST_BLOCK_HOURS,
        ram: saturating_sum(terms.iter().map(|t| t.ram_bytes)),
        terms,
    })
}

fn trader_terms(plan: &TraderPlan<'_>, knobs: &Knobs) -> Result<Vec<DemandTerm>, BudgetError> {
    let ensemble =
        (plan.ensemble)(knobs.top_n, knobs.dtype, knobs.device).map_err(BudgetError::Demand)?;
    let load = load_transient(&ensemble);
    let mut terms = runtime_terms(plan, knobs);
    // The part of the trading loop allocated after the members loaded lives
    // in memory the load freed: counted once, in the larger of the two.
    let reused = load.min(LOOP_REUSES_LOAD_RSS);
    if let Some(t) = terms.iter_mut().find(|t| t.component == "trading loop") {
        t.ram_bytes = TRADING_LOOP_RSS.saturating_sub(reused);
        t.basis = format!(
            "tokio workers, HTTP client, SQLite, embedded simulator ({:.1} MB measured, less {:.1} MB allocated after the load in memory it freed)",
            TRADING_LOOP_RSS as f64 / 1e6,
            reused as f64 / 1e6
        );
    }
    terms.splice(1..1, ensemble);
    if knobs.device == ComputeDevice::Cuda {
        let on_gpu = saturating_sum(terms.iter().map(|t| t.vram_bytes));
        let slack = (on_gpu / 100)
            .saturating_mul(ALLOCATOR_SLACK_PERCENT)
            .saturating_add(on_gpu % 100 * ALLOCATOR_SLACK_PERCENT / 100)
            .max(2 << 20);
        terms.push(DemandTerm::new(
            "CUDA context",
            0,
            CUDA_CONTEXT_VRAM,
            "per process, upper end of 300-500 MB measured for candle 0.11",
        ));
        terms.push(DemandTerm::new(
            "allocator slack",
            0,
            slack,
            format!("{ALLOCATOR_SLACK_PERCENT} % of weights + activations, at least 2 MiB"),
        ));
    }
    Ok(terms)
}

fn tenant_lines(tenants: &[Tenant], knobs: &Knobs) -> Vec<TenantLine> {
    tenants
        .iter()
        .map(|t| {
            let count = match knobs.workers {
                Some(w) if t.name == WORKER_TENANT => w,
                _ => t.count,
            };
            TenantLine {
                name: t.name.clone(),
                count,
                ram: t.ram_each.saturating_mul(u64::from(count)),
                vram: t.vram_each.saturating_mul(u64::from(count)),
            }
        })
        .collect()
}

/// Sums bytes, saturating: absurd declared sizes must not wrap into a fit.
fn saturating_sum(bytes: impl Iterator<Item = u64>) -> u64 {
    bytes.fold(0, u64::saturating_add)
}

fn resource_line(trader: u64, tenants: u64, limit: Option<&Limit>) -> ResourceLine {
    let total = trader.saturating_add(tenants);
    let allowed = limit.map(Limit::allowed);
    ResourceLine {
        trader,
        tenants,
        total,
        allowed,
        percent_of_machine: limit.map(|l| total as f64 * 100.0 / l.machine_total as f64),
        tenants_percent_of_machine: limit.map(|l| tenants as f64 * 100.0 / l.machine_total as f64),
        headroom: allowed.map(|a| {
            let h = i128::from(a) - i128::from(total);
            i64::try_from(h).unwrap_or(if h < 0 { i64::MIN } else { i64::MAX })
        }),
    }
}

/// Evaluates one configuration (without fixes; see [`suggest`]).
///
/// # Errors
/// A knob outside its range ([`Knobs::check`]), or when the ensemble's demand
/// cannot be computed (e.g. `top_n` larger than the ensemble).
pub fn evaluate(
    plan: &TraderPlan<'_>,
    tenants: &[Tenant],
    envelope: &Envelope,
    knobs: Knobs,
) -> Result<Report, BudgetError> {
    knobs.check()?;
    let terms = trader_terms(plan, &knobs)?;
    let lines = tenant_lines(tenants, &knobs);
    let ram = resource_line(
        saturating_sum(terms.iter().map(|t| t.ram_bytes)),
        saturating_sum(lines.iter().map(|t| t.ram)),
        Some(&envelope.ram),
    );
    let vram = resource_line(
        saturating_sum(terms.iter().map(|t| t.vram_bytes)),
        saturating_sum(lines.iter().map(|t| t.vram)),
        envelope.vram.as_ref(),
    );
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    if let Some(h) = ram.headroom.filter(|h| *h < 0) {
        reasons.push(format!(
            "RAM: needs {} but {:.0} % of {} allows {} (short by {})",
            ByteSize(ram.total),
            envelope.ram.allowed_percent,
            ByteSize(envelope.ram.machine_total),
            ByteSize(ram.allowed.unwrap_or(0)),
            ByteSize(h.unsigned_abs())
        ));
    }
    match (&envelope.vram, vram.headroom) {
        (Some(limit), Some(h)) if h < 0 => {
            let msg = format!(
                "VRAM: needs {} but {:.0} % of {} allows {} (short by {})",
                ByteSize(vram.total),
                limit.allowed_percent,
                ByteSize(limit.machine_total),
                ByteSize(vram.allowed.unwrap_or(0)),
                ByteSize(h.unsigned_abs())
            );
            if vram.trader > 0 {
                reasons.push(msg);
            } else {
                warnings.push(format!(
                    "{msg}; the co-tenants overrun it on their own and this {} trader adds no VRAM",
                    knobs.device
                ));
            }
        }
        (None, _) if vram.trader > 0 => reasons.push(format!(
            "VRAM: device {} needs {} but {}",
            knobs.device,
            ByteSize(vram.trader),
            envelope
                .vram_unknown_reason
                .as_deref()
                .unwrap_or("the GPU's memory is unknown")
        )),
        _ => {}
    }
    if knobs.device == ComputeDevice::Cuda {
        warnings.push(
            "the CUDA context and host-side CUDA libraries are estimates, not measured on this machine"
                .to_owned(),
        );
    }
    Ok(Report {
        verdict: if reasons.is_empty() {
            Verdict::Fits
        } else {
            Verdict::Refused
        },
        knobs,
        trader_terms: terms,
        tenants: lines,
        envelope: envelope.clone(),
        ram,
        vram,
        reasons,
        warnings,
        fixes: Vec::new(),
        swap_transient: None,
        backtest: None,
    })
}

/// The largest `v` in `lo..=hi` for which `fits(v)` gives a report, by
/// bisection: every knob searched here only adds memory as it grows, so the
/// values that fit are a prefix of the range. At most `2 + log2(hi - lo + 1)`
/// evaluations, whatever the range.
fn largest_fitting(
    lo: u32,
    hi: u32,
    mut fits: impl FnMut(u32) -> Result<Option<Report>, BudgetError>,
) -> Result<Option<(u32, Report)>, BudgetError> {
    if lo > hi {
        return Ok(None);
    }
    // The common case first: one step down is enough.
    if let Some(r) = fits(hi)? {
        return Ok(Some((hi, r)));
    }
    let Some(r) = fits(lo)? else {
        return Ok(None);
    };
    // Invariant: `good` fits, `bad` does not, good < bad.
    let (mut good, mut bad, mut best) = (lo, hi, r);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        match fits(mid)? {
            Some(r) => (good, best) = (mid, r),
            None => bad = mid,
        }
    }
    Ok(Some((good, best)))
}

/// The cheapest single changes that make a refused configuration fit, in the
/// order of the user's trade-offs: fewer training workers (the largest count
/// that fits), fewer members (the largest that fits), shorter history (the
/// longest that fits, never below what the models need), f16 weights, and for
/// a CUDA trader, the CPU. Each candidate is evaluated with the full model;
/// the counts and lengths are found by bisection ([`largest_fitting`]).
///
/// # Errors
/// As [`evaluate`]; a knob out of range is refused before any search.
pub fn suggest(
    plan: &TraderPlan<'_>,
    tenants: &[Tenant],
    envelope: &Envelope,
    knobs: Knobs,
) -> Result<Vec<Fix>, BudgetError> {
    knobs.check()?;
    let fits = |k: Knobs| -> Result<Option<Report>, BudgetError> {
        let r = evaluate(plan, tenants, envelope, k)?;
        Ok((r.verdict == Verdict::Fits).then_some(r))
    };
    let fix = |flag: String, effect: String, r: &Report| Fix {
        flag,
        effect,
        ram_percent: r.ram.percent_of_machine.unwrap_or(0.0),
        vram_percent: r.vram.percent_of_machine,
    };
    let mut fixes = Vec::new();

    let workers_now = tenants
        .iter()
        .find(|t| t.name == WORKER_TENANT)
        .map(|t| knobs.workers.unwrap_or(t.count));
    // Fewer workers than now, and never more than a knob may say.
    if let Some(now) = workers_now.filter(|n| *n > 0)
        && let Some((w, r)) = largest_fitting(0, (now - 1).min(MAX_WORKERS), |w| {
            fits(Knobs {
                workers: Some(w),
                ..knobs
            })
        })?
    {
        fixes.push(fix(
            format!("--workers {w}"),
            format!("{} fewer training workers", now - w),
            &r,
        ));
    }
    if let Some((n, r)) = largest_fitting(1, (knobs.top_n - 1).min(plan.max_top_n), |n| {
        fits(Knobs { top_n: n, ..knobs })
    })? {
        fixes.push(fix(
            format!("--top-n {n}"),
            format!("ensemble of {n} instead of {}", knobs.top_n),
            &r,
        ));
    }
    if let Some((h, r)) = largest_fitting(
        plan.min_history_hours.max(1),
        knobs.history_hours - 1,
        |h| {
            fits(Knobs {
                history_hours: h,
                ..knobs
            })
        },
    )? {
        fixes.push(fix(
            format!("--history-hours {h}"),
            format!(
                "{h} h of history (the models need {})",
                plan.min_history_hours
            ),
            &r,
        ));
    }
    if knobs.dtype == DType::F32
        && let Some(r) = fits(Knobs {
            dtype: DType::F16,
            ..knobs
        })?
    {
        fixes.push(fix(
            "--dtype f16".into(),
            "half-precision weights".into(),
            &r,
        ));
    }
    if knobs.device == ComputeDevice::Cuda
        && let Some(r) = fits(Knobs {
            device: ComputeDevice::Cpu,
            ..knobs
        })?
    {
        fixes.push(fix(
            "--device cpu".into(),
            "inference on the CPU, no VRAM".into(),
            &r,
        ));
    }
    Ok(fixes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const MB: u64 = 1_000_000;

    fn users_box() -> (Vec<Tenant>, Envelope) {
        let tenants = vec![
            Tenant {
                name: WORKER_TENANT.into(),
                count: 9,
                ram_each: 1250 * MB,
                vram_each: 850 * MB,
            },
            Tenant {
                name: "monitoring".into(),
                count: 1,
                ram_each: 600 * MB,
                vram_each: 0,
            },
        ];
        let envelope = Envelope {
            ram: Limit {
                machine_total: 32_000 * MB,
                source: "test".into(),
                allowed_percent: 90.0,
            },
            vram: Some(Limit {
                machine_total: 8200 * MB,
                source: "test".into(),
                allowed_percent: 85.0,
            }),
            vram_unknown_reason: None,
        };
        (tenants, envelope)
    }

    /// 100 MB of weights per member at f32.
    #[allow(clippy::unnecessary_wraps)] // the signature of `EnsembleDemandFn`
    fn ensemble(
        top_n: u32,
        dtype: DType,
        device: ComputeDevice,
    ) -> Result<Vec<DemandTerm>, String> {
        let bytes = u64::from(top_n) * 25 * MB * dtype.size_in_bytes();
        Ok(match device {
            ComputeDevice::Cpu => vec![DemandTerm::new("weights", bytes, 0, "")],
            ComputeDevice::Cuda => vec![DemandTerm::new("weights", 0, bytes, "")],
        })
    }

    fn plan() -> TraderPlan<'static> {
        TraderPlan {
            symbols: 3,
            threads: 1,
            min_history_hours: 71,
            max_top_n: 10,
            ensemble: &ensemble,
            projection: None,
        }
    }

    fn knobs(device: ComputeDevice) -> Knobs {
        Knobs {
            workers: None,
            top_n: 10,
            history_hours: 120,
            dtype: DType::F32,
            device,
        }
    }

    #[test]
    fn a_backtest_over_the_envelope_is_refused_though_the_run_fits() {
        let (tenants, envelope) = users_box();
        let mut r = evaluate(&plan(), &tenants, &envelope, knobs(ComputeDevice::Cpu)).unwrap();
        assert_eq!(r.verdict, Verdict::Fits, "{:?}", r.reasons);
        let allowed = r.ram.allowed.unwrap();
        assert_eq!(
            r.backtest_refusal(),
            None,
            "no backtest section, no refusal"
        );
        let backtest = |ram| BacktestBudget {
            decided_hours: 720,
            block_hours: 256,
            terms: Vec::new(),
            ram,
        };
        // Exactly at the line fits; one byte over does not.
        r.backtest = Some(backtest(allowed - r.ram.tenants));
        assert_eq!(r.backtest_refusal(), None);
        r.backtest = Some(backtest(allowed - r.ram.tenants + 1));
        let why = r.backtest_refusal().unwrap();
        assert!(why.starts_with("RAM: trader backtest needs "), "{why}");
        assert!(
            why.contains("720 decided hours in memory, 256-hour batched blocks"),
            "{why}"
        );
        assert!(why.ends_with("(short by 1 B)"), "{why}");
    }

    #[test]
    fn users_gpu_box_refuses_cuda_and_the_largest_fitting_worker_count_is_seven() {
        let (tenants, envelope) = users_box();
        let plan = plan();
        let r = evaluate(&plan, &tenants, &envelope, knobs(ComputeDevice::Cuda)).unwrap();
        assert_eq!(r.verdict, Verdict::Refused);
        assert_eq!(r.vram.tenants, 7650 * MB);
        assert_eq!(r.vram.allowed, Some(6970 * MB));
        // 1 GB of weights + 500 MB context + 100 MB slack: 8 workers (6.8 GB) no longer fit.
        let fixes = suggest(&plan, &tenants, &envelope, knobs(ComputeDevice::Cuda)).unwrap();
        let flags: Vec<&str> = fixes.iter().map(|f| f.flag.as_str()).collect();
        assert_eq!(flags, ["--workers 6", "--device cpu"]);
    }

    #[test]
    fn cpu_trader_is_not_refused_for_vram_it_does_not_use_but_is_warned() {
        let (tenants, envelope) = users_box();
        let plan = plan();
        let r = evaluate(&plan, &tenants, &envelope, knobs(ComputeDevice::Cpu)).unwrap();
        assert_eq!(r.verdict, Verdict::Fits);
        assert!(
            r.warnings.iter().any(|w| w.starts_with("VRAM")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn fixes_follow_the_trade_off_order_and_respect_the_lookback() {
        let (tenants, mut envelope) = users_box();
        // RAM for 9 workers + monitoring = 11.85 GB; allow 12.6 GB: room for 0.75 GB of trader.
        envelope.ram.machine_total = 14_000 * MB;
        let plan = plan();
        let k = knobs(ComputeDevice::Cpu);
        let r = evaluate(&plan, &tenants, &envelope, k).unwrap();
        assert_eq!(r.verdict, Verdict::Refused);
        let fixes = suggest(&plan, &tenants, &envelope, k).unwrap();
        let flags: Vec<&str> = fixes.iter().map(|f| f.flag.as_str()).collect();
        // 10 x 100 MB weights do not fit; 7 members (700 MB + ~10 MB runtime) do;
        // history is tiny so shortening it cannot help; f16 halves the weights.
        assert_eq!(flags, ["--workers 8", "--top-n 7", "--dtype f16"]);
        for f in &fixes {
            assert!(f.ram_percent <= 90.0, "{f:?}");
        }
    }

    #[test]
    fn knobs_out_of_range_are_refused_naming_the_knob_and_its_range() {
        let (tenants, envelope) = users_box();
        let plan = plan();
        let base = knobs(ComputeDevice::Cpu);
        for (k, name, range) in [
            (
                Knobs {
                    workers: Some(u32::MAX),
                    ..base
                },
                "workers",
                "0..=10000",
            ),
            (
                Knobs {
                    top_n: u32::MAX,
                    ..base
                },
                "top_n",
                "1..=1000",
            ),
            (Knobs { top_n: 0, ..base }, "top_n", "1..=1000"),
            (
                Knobs {
                    history_hours: 4_000_000_000,
                    ..base
                },
                "history_hours",
                "1..=87600",
            ),
            (
                Knobs {
                    history_hours: 0,
                    ..base
                },
                "history_hours",
                "1..=87600",
            ),
        ] {
            // evaluate first: before the bounds, suggest did not return.
            let err = evaluate(&plan, &tenants, &envelope, k)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(range), "{k:?}: {err}");
            let err = suggest(&plan, &tenants, &envelope, k)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(range), "{k:?}: {err}");
        }
    }

    /// The fix search before bisection: the first fitting value counting down.
    fn linear_largest(lo: u32, below: u32, fits: impl Fn(u32) -> bool) -> Option<u32> {
        (lo..below).rev().find(|v| fits(*v))
    }

    #[test]
    fn fix_search_by_bisection_finds_what_the_linear_search_found() {
        let (tenants, mut envelope) = users_box();
        let mut seen = BTreeSet::new();
        // 3 symbols: history is tiny; 1,000 symbols: 1.6 MB per hour, so
        // shortening the history is a fix at many different lengths.
        for (symbols, history_hours) in [(3, 120), (1_000, 1_000)] {
            let plan = TraderPlan { symbols, ..plan() };
            let fits = |envelope: &Envelope, k: Knobs| {
                evaluate(&plan, &tenants, envelope, k).unwrap().verdict == Verdict::Fits
            };
            // From a box where nothing fits to one where everything does.
            for ram_mb in (2_000..=20_000).step_by(250) {
                envelope.ram.machine_total = ram_mb * MB;
                for k in [
                    Knobs {
                        history_hours,
                        ..knobs(ComputeDevice::Cpu)
                    },
                    Knobs {
                        workers: Some(40),
                        history_hours,
                        ..knobs(ComputeDevice::Cuda)
                    },
                ] {
                    let want: Vec<String> = [
                        linear_largest(0, k.workers.unwrap_or(9), |w| {
                            fits(
                                &envelope,
                                Knobs {
                                    workers: Some(w),
                                    ..k
                                },
                            )
                        })
                        .map(|w| format!("--workers {w}")),
                        linear_largest(1, k.top_n, |n| fits(&envelope, Knobs { top_n: n, ..k }))
                            .map(|n| format!("--top-n {n}")),
                        linear_largest(plan.min_history_hours, k.history_hours, |h| {
                            fits(
                                &envelope,
                                Knobs {
                                    history_hours: h,
                                    ..k
                                },
                            )
                        })
                        .map(|h| format!("--history-hours {h}")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let got: Vec<String> = suggest(&plan, &tenants, &envelope, k)
                        .unwrap()
                        .into_iter()
                        .map(|f| f.flag)
                        .filter(|f| !f.starts_with("--dtype") && !f.starts_with("--device"))
                        .collect();
                    assert_eq!(got, want, "{symbols} symbols, {ram_mb} MB, {k:?}");
                    seen.extend(want);
                }
            }
        }
        // The cases reach every search, each at several different answers.
        for flag in ["--workers", "--top-n", "--history-hours"] {
            let answers = seen.iter().filter(|f| f.starts_with(flag)).count();
            assert!(answers >= 3, "{flag}: {seen:?}");
        }
    }

    #[test]
    fn fix_search_evaluates_logarithmically_many_candidates() {
        let (mut tenants, mut envelope) = users_box();
        // 12.6 GB allowed; the monitoring and 8 workers leave room for a 1 GB trader.
        envelope.ram.machine_total = 14_000 * MB;
        let calls = std::cell::Cell::new(0_u32);
        // 1 MB of weights per member at f32: 1 GB at the largest top_n.
        let counting = |top_n: u32, dtype: DType, _: ComputeDevice| {
            calls.set(calls.get() + 1);
            let bytes = u64::from(top_n) * 250_000 * dtype.size_in_bytes();
            Ok(vec![DemandTerm::new("weights", bytes, 0, "")])
        };
        let mut plan = plan();
        plan.max_top_n = MAX_TOP_N;
        plan.ensemble = &counting;
        let k = Knobs {
            workers: Some(MAX_WORKERS),
            top_n: MAX_TOP_N,
            history_hours: MAX_HISTORY_HOURS,
            dtype: DType::F32,
            device: ComputeDevice::Cpu,
        };
        let fixes = suggest(&plan, &tenants, &envelope, k).unwrap();
        // Each search needs at most 2 + log2(range) evaluations (16, 12, 19
        // here) and f16 one more; the linear search needed ~98,000.
        let n = calls.get();
        assert!(n <= 16 + 12 + 19 + 1, "{n} evaluations; {fixes:?}");
        let flags: Vec<&str> = fixes.iter().map(|f| f.flag.as_str()).collect();
        assert_eq!(flags, ["--workers 8"]);
        // A co-tenant count the library does not bound (the host file does)
        // is searched as fast, and never above MAX_WORKERS.
        tenants[0].count = u32::MAX;
        calls.set(0);
        let fixes = suggest(&plan, &tenants, &envelope, Knobs { workers: None, ..k }).unwrap();
        let n = calls.get();
        assert!(n <= 16 + 12 + 19 + 1, "{n} evaluations; {fixes:?}");
        assert_eq!(fixes[0].flag, "--workers 8", "{fixes:?}");
        assert_eq!(
            fixes[0].effect,
            format!("{} fewer training workers", u32::MAX - 8)
        );
    }

    #[test]
    fn a_backtest_holds_the_larger_of_the_load_and_the_projection_and_its_records() {
        // 100 MB of weights per member at f32 and a 10 MB load transient.
        let ensemble = |top_n: u32, dtype: DType, _: ComputeDevice| {
            let bytes = u64::from(top_n) * 25 * MB * dtype.size_in_bytes();
            Ok(vec![
                DemandTerm::new("weights", bytes, 0, ""),
                DemandTerm::new("load transient", 10 * MB, 0, ""),
            ])
        };
        let rows_seen = std::cell::Cell::new(0);
        // 1 MB per member and row.
        let projection = |top_n: u32, _: DType, rows: u64| {
            rows_seen.set(rows);
            u64::from(top_n) * rows * MB
        };
        let plan = TraderPlan {
            ensemble: &ensemble,
            projection: Some(&projection),
            ..plan()
        };
        let k = knobs(ComputeDevice::Cpu);
        let term = |terms: &[DemandTerm], name: &str| {
            terms
                .iter()
                .find(|t| t.component == name)
                .unwrap()
                .ram_bytes
        };
        let terms = backtest_terms(&plan, &k, 720, 256).unwrap();
        assert_eq!(rows_seen.get(), 256);
        assert_eq!(term(&terms, "projection"), 10 * 256 * MB - 10 * MB);
        assert_eq!(
            term(&terms, "records"),
            720 * BACKTEST_RECORD_BYTES_PER_HOUR
        );
        assert_eq!(term(&terms, "backtest loop"), BACKTEST_LOOP_RSS);
        assert!(terms.iter().all(|t| t.component != "trading loop"));
        // A backtest shorter than a block projects only its hours; a small
        // projection hides under the load transient.
        let terms = backtest_terms(&plan, &Knobs { top_n: 1, ..k }, 5, 256).unwrap();
        assert_eq!(rows_seen.get(), 5);
        assert_eq!(term(&terms, "projection"), 0);
        assert_eq!(term(&terms, "records"), 5 * BACKTEST_RECORD_BYTES_PER_HOUR);
        let budget = backtest_budget(&plan, &k).unwrap();
        assert_eq!(
            budget.ram,
            budget.terms.iter().map(|t| t.ram_bytes).sum::<u64>()
        );
        assert_eq!(budget.decided_hours, BACKTEST_REPORT_HOURS);
    }

    #[test]
    fn the_run_counts_its_measured_history_per_symbol_and_hour() {
        let (tenants, envelope) = users_box();
        let r = evaluate(&plan(), &tenants, &envelope, knobs(ComputeDevice::Cpu)).unwrap();
        let history = r
            .trader_terms
            .iter()
            .find(|t| t.component == "history")
            .unwrap();
        assert_eq!(
            history.ram_bytes,
            120 * 3 * RUN_HISTORY_BYTES_PER_SYMBOL_HOUR
        );
        assert!(r.backtest.is_none());
    }

    #[test]
    fn cuda_without_a_known_gpu_is_refused_with_the_reason() {
        let (tenants, mut envelope) = users_box();
        envelope.vram = None;
        envelope.vram_unknown_reason = Some("no GPU found (NVML unavailable)".into());
        let plan = plan();
        let r = evaluate(&plan, &tenants, &envelope, knobs(ComputeDevice::Cuda)).unwrap();
        assert_eq!(r.verdict, Verdict::Refused);
        assert!(r.reasons[0].contains("no GPU found"), "{:?}", r.reasons);
    }
}
