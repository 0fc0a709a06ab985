use std::path::PathBuf;

/// Everything that can be wrong with an ensemble directory or its members.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("ensemble directory {0} does not exist")]
    MissingDir(PathBuf),
    #[error("ensemble directory {0} is a file, not a directory")]
    NotADir(PathBuf),
    #[error("{path} is a directory, not {expected}")]
    IsDirectory {
        path: PathBuf,
        /// What the path should have been: "a safetensors file".
        expected: &'static str,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid JSON in {path}: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("corrupt safetensors header in {path}: {message}")]
    Header { path: PathBuf, message: String },
    #[error("device: {0}")]
    Device(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("bad state vector: {0}")]
    State(String),
    #[error(
        "the selected members read {inputs} different inputs (lookback/features); `infer` takes one state vector"
    )]
    MixedInputs {
        /// How many distinct inputs (lookback/features) the members read.
        inputs: usize,
    },
    #[error("top_n = 0 for the ensemble in {dir}: top_n must be at least 1")]
    TopNZero { dir: PathBuf },
    #[error("top_n = {top_n} but the ensemble in {dir} has only {available} members")]
    TopNTooLarge {
        top_n: usize,
        available: usize,
        dir: PathBuf,
    },
    /// The directory changed while it was read, every time it was tried.
    #[error(
        "ensemble directory {dir} changed while it was read ({tries} tries); it is being written, try again"
    )]
    Unsettled { dir: PathBuf, tries: u32 },
}
