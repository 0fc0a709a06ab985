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
}
