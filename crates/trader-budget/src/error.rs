use std::path::PathBuf;

/// Errors of the budgeter.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot parse {what} from {value:?}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        value: String,
    },
    #[error("computing the trader's demand: {0}")]
    Demand(String),
    #[error("{knob} = {value} is outside its allowed range {min}..={max}")]
    KnobOutOfRange {
        knob: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    /// A profile or host file that cannot be read or is invalid.
    #[error(transparent)]
    Config(#[from] trader_config::ConfigError),
    /// A profile's ensemble that cannot be read.
    #[error("reading the ensemble of profile {profile}")]
    Ensemble {
        profile: PathBuf,
        #[source]
        source: trader_ensemble::EnsembleError,
    },
    /// What was being done when an inner error happened.
    #[error("{doing}")]
    While {
        doing: &'static str,
        #[source]
        source: Box<BudgetError>,
    },
    /// `workers` overridden without a [`crate::WORKER_TENANT`] co-tenant.
    #[error(
        "--workers needs a co-tenant named {tenant:?} in the host file{}",
        if *measured { " (and not --measure)" } else { "" }
    )]
    NoWorkerTenant {
        tenant: &'static str,
        /// Co-tenants were measured (`--measure`), not declared.
        measured: bool,
    },
    /// A member trades a symbol its profile does not list.
    #[error("member {member} trades {symbol}, which profile {profile} does not list in `symbols`")]
    SymbolNotInProfile {
        member: PathBuf,
        symbol: String,
        profile: PathBuf,
    },
    /// The profile keeps less history than a member needs.
    #[error(
        "history_hours = {history_hours} is shorter than the {need} h member {member} needs (lookback {lookback} + longest feature window - 1)"
    )]
    HistoryTooShort {
        history_hours: u32,
        need: u32,
        member: PathBuf,
        lookback: u32,
    },
}

impl BudgetError {
    /// This error as the cause of `doing` (e.g. "probing this machine's memory").
    pub(crate) fn during(self, doing: &'static str) -> Self {
        BudgetError::While {
            doing,
            source: Box::new(self),
        }
    }
}
