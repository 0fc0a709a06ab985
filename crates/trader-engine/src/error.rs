//! What stops the engine.

use trader_store::StoreError;

/// Errors that stop the engine (the store is unusable). Broker and data
/// problems do not stop it: they skip the hour, recorded with the reason.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("batched first layer: {0}")]
    Projection(String),
    #[error("the ensemble trades {model:?} but the profile lists {profile:?}")]
    Symbols {
        model: Vec<String>,
        profile: Vec<String>,
    },
}
