//! Times the market part of one decision's state vector: 3 symbols x 10
//! features x lookback 24, from the shipped recorded data, over many bar
//! times. Prints median and p99 in microseconds.
//!
//!     cargo run --release -p trader-core --example feature_bench

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use trader_core::{Bar, FeatureName, market_state, required_history_hours};

fn load(file: &str) -> Vec<Bar> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/coinbase_2017_2018")
        .join(file);
    fs_err::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| Bar::from_recorded_line(l).unwrap())
        .collect()
}

fn main() {
    let symbols = [load("BTCUSD.csv"), load("ETHUSD.csv"), load("LTCUSD.csv")];
    let lookback = 24;
    let need = required_history_hours(lookback as u32, &FeatureName::ALL) as usize;
    let mut micros = Vec::new();
    let mut checksum = 0.0f64;
    for end in (need..symbols[0].len()).step_by(3) {
        // The window a live trader holds: exactly the required hours.
        let windows: Vec<&[Bar]> = symbols.iter().map(|s| &s[end - need..end]).collect();
        let t = Instant::now();
        let state = market_state(&windows, lookback, &FeatureName::ALL).unwrap();
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        checksum += f64::from(state[0]);
    }
    micros.sort_by(f64::total_cmp);
    let pick = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    println!(
        "market state (3 symbols x 10 features x lookback 24 = 720 values, window {need} h): \
         median {:.1} us, p99 {:.1} us over {} decisions (checksum {checksum:.3})",
        pick(0.5),
        pick(0.99),
        micros.len()
    );
}
