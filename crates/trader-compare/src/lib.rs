//! Two trader profiles side by side (`trader compare`): each profile's
//! backtest in its own child process, or two live traders against one
//! standalone simulator; then the report: metrics side by side, decision
//! agreement, predicted vs measured memory and latency, and the equity plot.
