//! What stops the engine.

use trader_store::StoreError;

/// Errors that stop the engine (the store is unusable). Broker and data
/// problems do not stop a live engine: they skip the hour, recorded with the
/// reason; only a backtest stops on a paper account it cannot read.
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
    #[error("the backtest's paper account")]
    Broker(#[from] trader_core::MarketError),
}
