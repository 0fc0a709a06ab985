//! The `trader` binary: parses the command line, installs the tracing
//! subscriber, wires the library crates together and maps outcomes to exit
//! codes (0 ok, 1 error, 2 usage, 3 budget refused).
//!
//! Tests: `cargo test -p trader-cli` spawns the built binary
//! (`crates/trader-cli/tests/`).

mod account_cmd;
mod args;
mod backtest_cmd;
mod budget_cmd;
mod compare;
mod data_cmd;
mod ensemble_cmd;
mod gate;
mod output;
mod run_cmd;
mod signals;
mod sim_cmd;
mod status_cmd;
mod train_cmd;
mod train_queue;
mod train_workers;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code of a refused budget, distinct from errors (1) and usage (2).
pub(crate) const EXIT_REFUSED: u8 = 3;
/// Exit code of a command stopped by a signal before it finished (128 + SIGINT).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "trader",
    version,
    about = "Paper trader for ensembles of neural-network policies, with a RAM/VRAM budgeter"
)]
struct Cli {
    /// Directory where `--profile NAME` looks for NAME.toml, and for host.toml.
    #[arg(long, global = true, default_value = "configs")]
    config_dir: PathBuf,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Predict this trader's RAM/VRAM next to the machine's co-tenants; exit 3 when it would not fit.
    Budget(budget_cmd::BudgetArgs),
    /// Inspect, run and time an ensemble directory.
    #[command(subcommand)]
    Ensemble(ensemble_cmd::EnsembleCommand),
    /// Import recorded bars into a store; show the features at a bar.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Run the Alpaca-compatible simulator on 127.0.0.1 over recorded bars.
    Sim(sim_cmd::SimArgs),
    /// Trade paper: Alpaca with keys in the environment, else a replay through the embedded simulator.
    Run(run_cmd::RunArgs),
    /// Backtest a profile on recorded bars: the run engine with the simulator's fill model.
    Backtest(backtest_cmd::BacktestArgs),
    /// Backtest two profiles, each in its own process, and report them side by side.
    Compare(compare::CompareArgs),
    /// What the store says about a profile's trader: newest bars, run, decision, equity, open orders.
    Status(status_cmd::StatusArgs),
    /// Show the broker's account, positions and open orders (Alpaca or the simulator).
    Account(account_cmd::AccountArgs),
    /// Hyperparameter search: W worker processes train and score actors into an ensemble directory.
    Train(train_cmd::TrainArgs),
}

/// What a command concluded, for the exit code.
pub(crate) enum Outcome {
    Ok,
    Refused,
    /// Stopped by SIGINT/SIGTERM before the work was done (exit 130).
    Interrupted,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices (a migration table that already exists) are
        // not the user's news.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Pretty => builder.compact().init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// candle's matmul reads `RAYON_NUM_THREADS` on every call (and rayon's pool
/// at its start); set it once, before any thread exists.
#[allow(unsafe_code)]
fn set_inference_threads(threads: usize) {
    // SAFETY: called first thing in `main`, while the process has one thread,
    // so no other thread can be reading the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
}

/// The inference threads of the command: `trader ensemble --threads`, or the
/// `threads` of the profile that `trader run` / `trader backtest` trades (a
/// profile that does not load is reported by the command itself). Without
/// it candle would use every core and read /proc/cpuinfo on each matmul.
fn inference_threads(cli: &Cli) -> Option<usize> {
    let profile = match &cli.command {
        Command::Ensemble(cmd) => return cmd.threads(),
        Command::Run(args) => &args.profile,
        Command::Backtest(args) => &args.profile,
        _ => return None,
    };
    trader_config::Profile::load(profile, &cli.config_dir)
        .ok()
        .map(|p| p.threads as usize)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = inference_threads(&cli) {
        set_inference_threads(threads);
    }
    init_tracing(cli.log_format);
    let result = match &cli.command {
        Command::Budget(args) => budget_cmd::run(args, &cli.config_dir),
        Command::Ensemble(cmd) => ensemble_cmd::run(cmd, &cli.config_dir),
        Command::Data(cmd) => data_cmd::run(cmd),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Account(args) => account_cmd::run(args),
        Command::Run(args) => run_cmd::run(args, &cli.config_dir),
        Command::Status(args) => status_cmd::run(args, &cli.config_dir),
        Command::Backtest(args) => backtest_cmd::run(args, &cli.config_dir),
        Command::Compare(args) => compare::run(args, &cli.config_dir),
        Command::Train(args) => train_cmd::run(args, &cli.config_dir),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(EXIT_REFUSED),
        Ok(Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Err(err) => {
            output::error(&err);
            ExitCode::FAILURE
        }
    }
}
