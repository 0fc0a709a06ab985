//! The startup budgeter: predicts what a trader process will hold in RAM and
//! VRAM, adds the machine's co-tenants, compares the sum with the envelope and
//! says "fits" or "refused", with the cheapest changes that would fit.
//!
//! # The budget model
//! Demand of one trader process, each term a row of `trader budget`:
//! - **runtime base** ([`RUNTIME_BASE_RSS`]): peak RSS of the `trader` binary
//!   with everything initialised but no model loaded; measured by
//!   `scripts/bench_budget.sh` (which prints every constant below next to
//!   what it measures now).
//! - **trading loop** ([`TRADING_LOOP_RSS`]): what `trader run` adds to that
//!   (tokio workers, HTTP client, SQLite, the embedded simulator), less the
//!   part allocated after the load in memory the load freed
//!   ([`LOOP_REUSES_LOAD_RSS`], at most the load transient).
//! - **weights**, **load transient**, **activations**: reported by
//!   trader-ensemble from the safetensors headers (parameters x bytes of the
//!   profile's dtype; the largest member file while members load one at a time;
//!   one row per layer per member).
//! - **history** ([`RUN_HISTORY_BYTES_PER_SYMBOL_HOUR`] x symbols x
//!   `history_hours`): what `trader run` holds per hour of history, measured
//!   (the bars alone are [`trader_core::HISTORY_BYTES_PER_SYMBOL_HOUR`]).
//! - **store cache** ([`STORE_CACHE_BYTES`]): SQLite's page cache (its default
//!   `cache_size = -2000`, i.e. 2,048,000 bytes, one connection).
//! - **threads** ([`THREAD_RSS`] each): stacks and per-thread allocator arenas,
//!   ~1 MB per thread as measured for candle 0.11 here; the main thread plus the
//!   profile's inference threads.
//! - **backtest** ([`Report::backtest`], [`backtest_terms`]): `trader
//!   backtest` of the same profile has no trading loop or store cache but
//!   [`BACKTEST_LOOP_RSS`], its in-memory records
//!   ([`BACKTEST_RECORD_BYTES_PER_HOUR`] per decided hour) and the batched
//!   first layer's projection of a block (the market columns of every
//!   member's first layer copied, their output for the block's hours, the
//!   block's inputs), counted beyond the load transient (the load is over
//!   before the first block). Not in the verdict of `trader budget`.
//! - on CUDA: **CUDA context** ([`CUDA_CONTEXT_VRAM`], 300-500 MB per process
//!   as measured for candle 0.11; the upper end is used) and **allocator slack**
//!   ([`ALLOCATOR_SLACK_PERCENT`] of weights + activations, at least 2 MiB).
//!
//! The envelope is the machine total (declared in the host file, or probed: the
//! cgroup v2 `memory.max` / v1 `memory.limit_in_bytes`, else `MemTotal`; NVML for
//! VRAM) times the host file's allowed percent. Co-tenants are declared in the
//! host file or, with `--measure`, measured now (RAM in use = MemTotal -
//! MemAvailable; NVML's used VRAM).
//!
//! A resource is refused when the total exceeds the limit and this trader adds
//! to it; when co-tenants alone overrun a resource this trader does not use
//! (VRAM for a CPU trader), the report warns instead of refusing.
//!
//! # What it owns
//! - the envelope and co-tenants of a host file (`host.rs`: [`resolve_host`],
//!   [`ram_limit`], [`vram_limit`], [`declared_tenants`],
//!   [`measured_tenants`]; without a host file this machine probed with no
//!   co-tenants and [`DEFAULT_RAM_PERCENT`] / [`DEFAULT_VRAM_PERCENT`]);
//! - the inputs of a trader's budget (`inputs.rs`: [`resolve`] reads the
//!   profile, the host file and the ensemble's headers, applies the what-if
//!   overrides ([`WhatIf`]) and checks the profile against its members
//!   ([`check_members_fit_profile`]); [`BudgetInputs::report`] evaluates
//!   them, [`ensemble_run_report`] an ensemble run without a profile);
//! - the model and its verdict with fixes (`model.rs`: [`evaluate`],
//!   [`suggest`]), and the text table (`render.rs`);
//! - the worker gate of `trader train` (`workers.rs`: [`resolve_worker_room`],
//!   [`worker_room`]);
//! - the probes (`probe.rs`, `gpu.rs`), among them the one reader of a
//!   process's memory ([`process_memory`], [`own_memory`]) and the one scan
//!   for `trader train` processes ([`probe_train_processes`]);
//! - the state file of `trader train`'s governor and the running governors
//!   `trader budget` shows (`governor_state.rs`: [`GovernorState`],
//!   [`probe_governors`], [`use_measured_workers`]: the training workers
//!   counted at a running governor's measured demand).
//!
//! It reads profile and host files through trader-config and ensemble
//! headers through trader-ensemble (neither depends on this crate); it
//! loads no model, prints nothing and maps no exit code: `trader-cli`
//! parses the flags into [`WhatIf`], prints the report and exits 3 when
//! refused.
//!
//! Tests: `cargo test -p trader-budget` (the unit tests beside the code;
//! the probes and host resolution run on fake `/proc` trees, the profile
//! checks on the shipped `configs/` and demo ensembles).

mod error;
mod governor_state;
mod gpu;
mod host;
mod inputs;
mod model;
mod probe;
mod render;
mod workers;

pub use error::BudgetError;
pub use governor_state::{
    DemandSource, GOVERNOR_STATE_FILE, GovernedWorker, GovernorCounts, GovernorDemand,
    GovernorSection, GovernorState, RunningGovernor, WorkerRam, probe_governors, render_governors,
    use_measured_workers,
};
pub use gpu::{GpuProbe, probe_gpu};
pub use host::{
    DEFAULT_RAM_PERCENT, DEFAULT_VRAM_PERCENT, HOST_FILE, HostBudget, IN_USE_NOW_TENANT,
    declared_tenants, measured_tenants, ram_limit, read_host_file, resolve_host,
    resolve_host_besides, vram_limit, vram_needs_probe,
};
pub use inputs::{
    BudgetInputs, ENSEMBLE_RUN_FIX_FLAGS, WhatIf, check_members_fit_profile, ensemble_run_report,
    members_history_hours, resolve, swap_report, swap_transient,
};
pub use model::{
    ALLOCATOR_SLACK_PERCENT, BACKTEST_BLOCK_HOURS, BACKTEST_LOOP_RSS,
    BACKTEST_RECORD_BYTES_PER_HOUR, BACKTEST_REPORT_HOURS, BacktestBudget, CUDA_CONTEXT_VRAM,
    EnsembleDemandFn, Envelope, Fix, Knobs, LOOP_REUSES_LOAD_RSS, Limit, MAX_HISTORY_HOURS,
    MAX_TOP_N, MAX_WORKERS, ProjectionFn, RUN_HISTORY_BYTES_PER_SYMBOL_HOUR, RUNTIME_BASE_RSS,
    Report, ResourceLine, STORE_CACHE_BYTES, THREAD_RSS, TRADING_LOOP_RSS, Tenant, TenantLine,
    TraderPlan, Verdict, WORKER_TENANT, backtest_budget, backtest_terms, evaluate, suggest,
};
pub use probe::{
    MemoryProbe, ProcessMemory, RunningWorker, TRAIN_WORKER_ARG, TrainProcess, own_memory,
    probe_memory, probe_train_processes, probe_train_workers, process_memory,
};
pub use render::render_text;
pub use workers::{WorkerRoom, resolve_worker_room, worker_room};
