"""Conformance of `trader sim` with Alpaca's official Python SDK (alpaca-py).

Run by scripts/sdk_conformance.sh, which creates the virtualenv, starts the
simulator and passes its URL and keys in the environment:
  SIM_URL             http://127.0.0.1:PORT
  APCA_API_KEY_ID     the simulator's key pair
  APCA_API_SECRET_KEY
  DATA_DIR            the recorded set the simulator serves (to count bars)

Each check is a function; all run, failures are listed, exit 1 on any.
The simulator runs at 3600x (an hour a second), so a market order fills at
the next bar's open within about a second of real time.
"""

import csv
import os
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical import CryptoHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order, TradeActivity
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
)

URL = os.environ["SIM_URL"]
KEY = os.environ["APCA_API_KEY_ID"]
SECRET = os.environ["APCA_API_SECRET_KEY"]
DATA_DIR = Path(os.environ.get("DATA_DIR", "data/coinbase_2017_2018"))
RUN = os.environ.get("RUN_TAG", str(int(time.time())))

trading = TradingClient(KEY, SECRET, paper=True, url_override=URL)
data = CryptoHistoricalDataClient(KEY, SECRET, url_override=URL)

# What earlier checks leave for later ones.
state: dict = {}


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def wait_filled(order_id, seconds=15.0) -> Order:
    deadline = time.monotonic() + seconds
    while True:
        o = trading.get_order_by_id(order_id)
        if o.status == OrderStatus.FILLED:
            return o
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} not filled after {seconds}s: {o.status}")
        time.sleep(0.2)


def check_account():
    a = trading.get_account()
    expect(float(a.cash) == 100_000.0, f"starting cash {a.cash}")
    expect(a.status.value == "ACTIVE", f"status {a.status}")
    expect(a.currency == "USD", f"currency {a.currency}")
    expect(isinstance(a.buying_power, str), "decimals are strings")
    clock = trading.get_clock()
    expect(clock.is_open, "crypto trades around the clock")
    asset = trading.get_asset("BTC/USD")
    expect(asset.symbol == "BTC/USD" and asset.tradable, f"asset {asset}")


def check_order_by_notional():
    req = MarketOrderRequest(
        symbol="BTC/USD",
        notional=1000.0,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        client_order_id=f"conf-notional-{RUN}",
    )
    o = trading.submit_order(req)
    expect(o.notional is not None and float(o.notional) == 1000.0, f"notional {o.notional}")
    expect(o.qty is None, f"qty {o.qty}")
    expect(o.type == OrderType.MARKET and o.side == OrderSide.BUY, f"{o.type} {o.side}")
    expect(o.client_order_id == f"conf-notional-{RUN}", o.client_order_id)
    filled = wait_filled(o.id)
    expect(float(filled.filled_qty) > 0, f"filled_qty {filled.filled_qty}")
    expect(float(filled.filled_avg_price) > 0, f"filled_avg_price {filled.filled_avg_price}")
    expect(filled.filled_at is not None, "filled_at")
    state["notional"] = filled


def check_order_by_qty():
    req = MarketOrderRequest(
        symbol="ETH/USD",
        qty=0.01,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        client_order_id=f"conf-qty-{RUN}",
    )
    o = trading.submit_order(req)
    expect(float(o.qty) == 0.01, f"qty {o.qty}")
    filled = wait_filled(o.id)
    expect(float(filled.filled_qty) == 0.01, f"filled_qty {filled.filled_qty}")
    state["qty"] = filled


def check_duplicate_client_order_id():
    req = MarketOrderRequest(
        symbol="BTC/USD",
        notional=10.0,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        client_order_id=f"conf-notional-{RUN}",
    )
    try:
        trading.submit_order(req)
    except APIError as e:
        expect(e.status_code == 422, f"status {e.status_code}")
        expect("client_order_id" in str(e), str(e))
        return
    raise AssertionError("a duplicate client_order_id was accepted")


def check_get_by_client_id():
    o = trading.get_order_by_client_id(f"conf-qty-{RUN}")
    expect(o.id == state["qty"].id, f"{o.id} != {state['qty'].id}")
    try:
        trading.get_order_by_client_id("no-such-order")
    except APIError as e:
        expect(e.status_code == 404, f"status {e.status_code}")
        return
    raise AssertionError("an unknown client_order_id was found")


def check_positions():
    positions = {p.symbol: p for p in trading.get_all_positions()}
    expect({"BTCUSD", "ETHUSD"} <= set(positions), f"positions {sorted(positions)}")
    btc = trading.get_open_position("BTC/USD")
    expect(float(btc.qty) > 0 and btc.asset_class.value == "crypto", f"{btc}")
    a = trading.get_account()
    expect(float(a.cash) < 100_000.0 - 1000.0, f"cash after buys {a.cash}")


def check_limit_replace_cancel():
    req = LimitOrderRequest(
        symbol="BTC/USD",
        qty=0.001,
        side=OrderSide.BUY,
        limit_price=100.0,
        time_in_force=TimeInForce.GTC,
        client_order_id=f"conf-limit-{RUN}",
    )
    o = trading.submit_order(req)
    expect(o.type == OrderType.LIMIT and float(o.limit_price) == 100.0, f"{o}")
    new = trading.replace_order_by_id(o.id, ReplaceOrderRequest(limit_price=110.0))
    expect(str(new.replaces) == str(o.id), f"replaces {new.replaces}")
    expect(float(new.limit_price) == 110.0, f"limit_price {new.limit_price}")
    old = trading.get_order_by_id(o.id)
    expect(old.status == OrderStatus.REPLACED, f"old status {old.status}")
    expect(str(old.replaced_by) == str(new.id), f"replaced_by {old.replaced_by}")
    trading.cancel_order_by_id(new.id)
    canceled = trading.get_order_by_id(new.id)
    expect(canceled.status == OrderStatus.CANCELED, f"status {canceled.status}")
    expect(canceled.canceled_at is not None, "canceled_at")
    stop = trading.submit_order(
        StopLimitOrderRequest(
            symbol="ETH/USD",
            qty=0.01,
            side=OrderSide.BUY,
            stop_price=100_000.0,
            limit_price=100_100.0,
            time_in_force=TimeInForce.GTC,
        )
    )
    expect(stop.type == OrderType.STOP_LIMIT and float(stop.stop_price) == 100_000.0, f"{stop}")
    trading.cancel_order_by_id(stop.id)
    ioc = trading.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.001,
            side=OrderSide.BUY,
            limit_price=1_000_000.0,
            time_in_force=TimeInForce.IOC,
        )
    )
    filled = wait_filled(ioc.id)
    expect(float(filled.filled_avg_price) < 1_000_000.0, "a limit fills at the limit or better")
    state["limit_replaced"] = (o, new)


def check_list_filters():
    n, q = state["notional"], state["qty"]
    all_btc = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["BTC/USD"], direction=Sort.ASC, limit=500)
    )
    ids = [str(o.id) for o in all_btc]
    expect(ids and ids[0] == str(n.id), f"oldest BTC order first: {ids}")
    expect(all(o.symbol == "BTC/USD" for o in all_btc), "symbols filter")
    closed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=500))
    expect({str(n.id), str(q.id)} <= {str(o.id) for o in closed}, "filled orders are closed")
    expect(all(o.status != OrderStatus.NEW for o in closed), "closed has no open order")
    open_ = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    expect(all(o.status == OrderStatus.NEW for o in open_), "open has only open orders")
    newest = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=1, nested=True))
    expect(len(newest) == 1, f"limit=1 gave {len(newest)}")
    window = trading.get_orders(
        GetOrdersRequest(
            status=QueryOrderStatus.ALL,
            after=n.submitted_at - timedelta(seconds=1),
            until=q.submitted_at + timedelta(seconds=1),
            direction=Sort.ASC,
        )
    )
    got = [str(o.id) for o in window]
    expect(got[:1] == [str(n.id)] and str(q.id) in got, f"after/until window {got}")
    later = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=q.submitted_at))
    expect(str(n.id) not in {str(o.id) for o in later}, "after excludes earlier orders")
    sells = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, side=OrderSide.SELL))
    expect(all(o.side == OrderSide.SELL for o in sells), "side filter")


def check_activities():
    raw = trading.get("/account/activities", {"activity_types": "FILL", "direction": "asc"})
    acts = [TradeActivity(**a) for a in raw]
    by_order = {str(a.order_id): a for a in acts}
    for o in (state["notional"], state["qty"]):
        a = by_order.get(str(o.id))
        expect(a is not None, f"no FILL for {o.id}")
        expect(abs(a.price - float(o.filled_avg_price)) < 1e-9, f"price {a.price}")
        expect(abs(a.qty - float(o.filled_qty)) < 1e-12, f"qty {a.qty}")
        expect(a.side == OrderSide.BUY and a.order_status == OrderStatus.FILLED, f"{a}")
    times = [a.transaction_time for a in acts]
    expect(times == sorted(times), "direction=asc")
    page = trading.get("/account/activities/FILL", {"page_size": 1})
    expect(len(page) == 1, f"page_size=1 gave {len(page)}")
    nxt = trading.get("/account/activities/FILL", {"page_size": 1, "page_token": page[0]["id"]})
    expect(len(nxt) == 1 and nxt[0]["id"] != page[0]["id"], "page_token pages on")


def check_close_position():
    held = float(trading.get_open_position("ETH/USD").qty)
    half = trading.close_position("ETH/USD", ClosePositionRequest(percentage="50"))
    expect(half.side == OrderSide.SELL and abs(float(half.qty) - held / 2) < 1e-12, f"{half}")
    wait_filled(half.id)
    rest = trading.close_position("ETH/USD")
    wait_filled(rest.id)
    try:
        trading.get_open_position("ETH/USD")
    except APIError as e:
        expect(e.status_code == 404, f"status {e.status_code}")
        return
    raise AssertionError("the ETH position is still open")


def recorded_count(symbol_file, start, end):
    with open(DATA_DIR / symbol_file, newline="") as f:
        rows = csv.DictReader(f)
        ts = (datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in rows)
        return sum(1 for t in ts if start <= t <= end)


def check_crypto_bars_paginate():
    start = datetime(2017, 7, 1, tzinfo=timezone.utc)
    end = datetime(2018, 2, 1, tzinfo=timezone.utc)
    symbols = {"BTC/USD": "BTCUSD.csv", "ETH/USD": "ETHUSD.csv", "LTC/USD": "LTCUSD.csv"}
    req = CryptoBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Hour, start=start, end=end)
    bars = data.get_crypto_bars(req).data
    total = 0
    for sym, file in symbols.items():
        want = recorded_count(file, start, end)
        got = bars.get(sym, [])
        expect(len(got) == want, f"{sym}: {len(got)} bars, the recorded set has {want}")
        ts = [b.timestamp for b in got]
        expect(ts == sorted(ts) and len(set(ts)) == len(ts), f"{sym}: sorted, no repeats")
        total += len(got)
    # The SDK asks at most 10,000 bars a page: more means it paged on.
    expect(total > 10_000, f"only {total} bars: no second page")
    limited = data.get_crypto_bars(
        CryptoBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Hour, start=start, end=end, limit=12_000)
    ).data
    n = sum(len(v) for v in limited.values())
    expect(n == 12_000, f"limit=12000 gave {n}")
    first = bars["BTC/USD"][0]
    expect(first.open == 2505.56 and first.close == 2509.17, f"first BTC bar {first}")


CHECKS = [
    check_account,
    check_order_by_notional,
    check_order_by_qty,
    check_duplicate_client_order_id,
    check_get_by_client_id,
    check_positions,
    check_limit_replace_cancel,
    check_list_filters,
    check_activities,
    check_close_position,
    check_crypto_bars_paginate,
]


def main():
    failed = []
    for check in CHECKS:
        t0 = time.monotonic()
        try:
            check()
            print(f"ok    {check.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(check.__name__)
            print(f"FAIL  {check.__name__}", flush=True)
            traceback.print_exc()
    print(f"{len(CHECKS) - len(failed)}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
