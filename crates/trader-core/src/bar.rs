//! The compact in-memory bar the history window holds.

/// One hourly bar. `t` is the bar's start in seconds since the Unix epoch (UTC);
/// the bar is complete at `t + 3600`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub t: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Bytes one symbol-hour costs in the in-memory history window: one [`Bar`].
pub const HISTORY_BYTES_PER_SYMBOL_HOUR: u64 = std::mem::size_of::<Bar>() as u64;
