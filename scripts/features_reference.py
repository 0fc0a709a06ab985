#!/usr/bin/python3
"""Independent computation of the feature catalog (DESIGN.md) with pandas.

Reads data/coinbase_2017_2018/*.csv and writes, for many bar times per symbol,
the value of every catalog feature at that bar, to
crates/trader-core/tests/fixtures/features_pandas.json. The Rust feature code
is tested against this file (crates/trader-core/tests/features_parity.rs).

Times: every 97th hour from the first hour with 60 bars of history, plus every
hour of 2018-08-09T12Z..2018-08-11T12Z (BTC's zero-volume stretch) and the 70
hours from 5 h before each feed restart (2017-09-22T20Z, 2017-11-12T04Z).

pandas rolling windows (ddof=0 for the population std); conventions of the
design: volume_z_24 and boll_b_20 are 0 where the window's std is 0, cci_20 is 0
where its mean deviation is 0 (flat windows: all values equal), Cutler RSI with
100 when loss = 0 < gain and 50 when both are 0, mapped to (rsi - 50) / 50.

    /usr/bin/python3 scripts/features_reference.py      # Debian: python3-pandas
"""
import json
import os

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "coinbase_2017_2018")
OUT = os.path.join(ROOT, "crates", "trader-core", "tests", "fixtures", "features_pandas.json")
FILES = {"BTCUSD.csv": "BTC/USD", "ETHUSD.csv": "ETH/USD", "LTCUSD.csv": "LTC/USD"}


def flat(window):
    return bool((window == window[0]).all())


def features(df):
    c, o, h, lo, v = df["close"], df["open"], df["high"], df["low"], df["volume"]
    out = pd.DataFrame(index=df.index)
    out["log_return"] = np.log(c / c.shift(1))
    out["co_return"] = np.log(c / o)
    out["hl_range"] = (h - lo) / c
    x = np.log1p(v)
    x_flat = x.rolling(24).apply(flat, raw=True).astype(bool)
    out["volume_z_24"] = ((x - x.rolling(24).mean()) / x.rolling(24).std(ddof=0)).where(~x_flat, 0.0)
    d = c.diff()
    gain = d.clip(lower=0).rolling(14).mean()
    loss = (-d).clip(lower=0).rolling(14).mean()
    rsi = 100 - 100 / (1 + gain / loss)
    rsi = rsi.where(loss != 0, np.where(gain > 0, 100.0, 50.0))
    out["rsi_14"] = (rsi - 50) / 50
    out["macd_sma"] = (c.rolling(12).mean() - c.rolling(26).mean()) / c
    c_flat = c.rolling(20).apply(flat, raw=True).astype(bool)
    out["boll_b_20"] = ((c - c.rolling(20).mean()) / (2 * c.rolling(20).std(ddof=0))).where(~c_flat, 0.0)
    tp = (h + lo + c) / 3
    tp_mean = tp.rolling(20).mean()
    meandev = tp.rolling(20).apply(lambda w: np.mean(np.abs(w - w.mean())), raw=True)
    tp_flat = tp.rolling(20).apply(flat, raw=True).astype(bool)
    out["cci_20"] = ((tp - tp_mean) / (0.015 * meandev) / 100).where(~tp_flat, 0.0)
    out["sma_ratio_30"] = c / c.rolling(30).mean() - 1
    out["sma_ratio_60"] = c / c.rolling(60).mean() - 1
    return out


def main():
    rows = []
    for name, symbol in FILES.items():
        df = pd.read_csv(os.path.join(DATA, name), parse_dates=["timestamp"]).set_index("timestamp")
        feats = features(df)
        times = set(df.index[59::97])
        times |= set(pd.date_range("2018-08-09T12:00Z", "2018-08-11T12:00Z", freq="h"))
        for restart in ("2017-09-22T20:00Z", "2017-11-12T04:00Z"):
            start = pd.Timestamp(restart) - pd.Timedelta(hours=5)
            times |= set(pd.date_range(start, periods=70, freq="h"))
        for t in sorted(times):
            values = feats.loc[t]
            assert values.notna().all(), (symbol, t, values)
            rows.append({
                "symbol": symbol,
                "t": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "features": {k: float(values[k]) for k in feats.columns},
            })
    with open(OUT, "w") as f:
        json.dump({"source": "scripts/features_reference.py", "rows": rows}, f, indent=0)
        f.write("\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
