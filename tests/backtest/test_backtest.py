"""Backtests on the real Aave v3 daily data (examples/backtest/data, MIT): every strategy's NAV path
recomputed independently from the data's indices, the rate-chasing bot by a hand loop, no look-ahead,
a replayed step identical, and sweeps equal on 1 and 2 Dask workers."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bondfolio.audit.replay import replay
from bondfolio.backtest import backtest
from bondfolio.backtest.engine import UniverseFile
from bondfolio.cli import main
from bondfolio.errors import InputError
from bondfolio.inputs.store import HistoryStore, import_aave_daily, import_defillama, import_snapshots
from tests.factories import ROOT

DATA = ROOT / "examples" / "backtest" / "data" / "aave_v3_stables_daily.csv"
START, END = date(2025, 9, 1), date(2025, 10, 1)
MARKETS = [("ethereum", "USDC", 0.05), ("ethereum", "USDT", 0.06), ("ethereum", "DAI", 0.06),
           ("arbitrum", "USDT", 0.08), ("base", "USDC", 0.07), ("avalanche", "USDC", 0.09)]
POLICY = {"name": "bt", "objective": {"risk_aversion": 20.0, "trading_cost_bp": 1.0},
          "constraints": [{"kind": "budget"}, {"kind": "max_weight", "max": 0.3}],
          "execution": {"gas_per_leg": 5.0, "bridge_cost_bp": 5.0}}


def _universe() -> UniverseFile:
    return UniverseFile.model_validate_json(json.dumps({"opportunities": [
        {"id": f"{net}-{sym.lower()}", "series": f"aave-v3:{net}:{sym}", "protocol": "aave-v3", "chain": net,
         "asset": sym, "risk_score": score} for net, sym, score in MARKETS]}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.duckdb"
    with HistoryStore(path) as s:
        import_aave_daily(DATA, s)
    return path


@pytest.fixture(scope="module")
def run(store: Path) -> Any:
    return backtest(POLICY, store, _universe(), START, END, "7d", 1_000_000.0)


def _indices() -> pd.DataFrame:
    """Liquidity indices by day and market, read straight from the CSV (forward-filled over gaps)."""
    rows = [r for r in csv.DictReader(DATA.read_text().splitlines())
            if (r["network"], r["symbol"]) in {(n, s) for n, s, _ in MARKETS}]
    frame = pd.DataFrame([{"date": date.fromisoformat(r["date"]), "id": f"{r['network']}-{r['symbol'].lower()}",
                           "index": float(r["liquidity_index"])} for r in rows])
    table = frame.pivot_table(index="date", columns="id", values="index", aggfunc="last").sort_index()
    first = min(table.index)
    days = [first + timedelta(days=k) for k in range((END - first).days + 1)]
    return table.reindex(index=pd.Index(days)).ffill()  # as of each day: its latest observation


def test_buy_and_hold_is_the_product_of_index_ratios(run: Any) -> None:
    idx = _indices()
    ids = run.ids
    st = run.strategies["buy_and_hold"]
    start_values = st.weights[0][1] * st.nav[0]  # after the first day's trades
    ratio = (idx.loc[END, ids] / idx.loc[START, ids]).to_numpy()
    expected = float(start_values @ ratio)
    # the data's indices are rounded to 6 decimals (~1e-6 relative): that is the tolerance
    assert st.nav[-1] == pytest.approx(expected, rel=2e-6)


def test_the_policys_nav_path_follows_its_recorded_weights_and_the_indices(run: Any) -> None:
    # day to day, NAV grows by the recorded weights times the indices' ratios (idle cash earns 0 here);
    # on a rebalance day it then pays the day's costs: together exactly what the metrics report as costs
    idx = _indices()
    st = run.strategies["policy"]
    ids = run.ids
    weights = dict(st.weights)
    paid = st.nav[0] - 1_000_000.0  # the first day's trades from cash
    for k, day in enumerate(run.dates[:-1]):
        nxt = day + timedelta(days=1)
        growth = (idx.loc[nxt, ids] / idx.loc[day, ids]).to_numpy()
        w = weights[day]
        grown = float(st.nav[k] * (w @ growth + (1 - w.sum())))
        if (k + 1) % 7:
            assert st.nav[k + 1] == pytest.approx(grown, rel=1e-12)
        else:
            assert st.nav[k + 1] <= grown
            paid += st.nav[k + 1] - grown
    assert -paid == pytest.approx(sum(st.costs.values()), rel=1e-9)

def test_rate_chasing_equals_a_hand_loop(store: Path, run: Any) -> None:
    # every rebalance day: sort by the day's APY (the last observation on or before it), fill each market
    # up to the 30 % cap; pay 1 bp, 5 USD a traded position and 5 bp on money bridged between chains
    with HistoryStore(store, read_only=True) as s:
        obs = s.frame([f"aave-v3:{n}:{sym}" for n, sym, _ in MARKETS], START - timedelta(days=120), END)
    obs["id"] = [f"{x.split(':')[1]}-{x.split(':')[2].lower()}" for x in obs["series"]]
    apy = obs.pivot_table(index="date", columns="id", values="apy", aggfunc="last")
    idx = _indices()
    ids, chains = run.ids, [n for n, _, _ in MARKETS]
    values, cash, nav = np.zeros(len(ids)), 1_000_000.0, []
    for k, day in enumerate(run.dates):
        if k % 7 == 0:
            total = values.sum() + cash
            today = apy.loc[:day].ffill().iloc[-1][ids].to_numpy()
            w, room = np.zeros(len(ids)), 1.0
            for i in np.argsort(-today, kind="stable"):
                w[i] = min(0.3, room)
                room -= w[i]
            trade = w * total - values
            flows: dict[str, float] = {}
            for c, t in zip(chains, trade, strict=True):
                flows[c] = flows.get(c, 0.0) + t
            cost = 1e-4 * np.abs(trade).sum() + 5.0 * np.sum(np.abs(trade) > 1e-6 * total) \
                + 5e-4 * sum(v for v in flows.values() if v > 0)
            values, cash = w * (total - cost), (total - cost) * (1 - w.sum())
        nav.append(values.sum() + cash)
        if day < END:
            values = values * (idx.loc[day + timedelta(days=1), ids] / idx.loc[day, ids]).to_numpy()
    assert run.strategies["rate_chasing"].nav == pytest.approx(nav, rel=1e-12)


def test_no_look_ahead(store: Path, tmp_path: Path, run: Any) -> None:
    # a store whose data after the 15th of September is wildly different: every decision up to then is the same
    cut = date(2025, 9, 15)
    future = tmp_path / "future.duckdb"
    with HistoryStore(store, read_only=True) as src:
        frame = src.frame(list(src.series()["series"]))
        series = src.series().to_dict(orient="records")
    frame.loc[frame["date"] > cut, "apy"] *= 3.0
    frame.loc[frame["date"] > cut, "liquidity_index"] *= 1.5
    with HistoryStore(future) as dst:
        dst.write([{**s, "meta": json.loads(s["meta"])} for s in series], frame)
    other = backtest(POLICY, future, _universe(), START, END, "7d", 1_000_000.0)
    early = [d for d in run.decisions if d <= cut]
    assert early and all(other.decisions[d]["record_sha256"] == run.decisions[d]["record_sha256"] for d in early)
    late = [d for d in run.decisions if d > cut]
    assert any(other.decisions[d]["record_sha256"] != run.decisions[d]["record_sha256"] for d in late)


def test_a_replayed_step_is_identical(run: Any) -> None:
    day = sorted(run.decisions)[2]
    result = replay(run.decisions[day])
    assert result.verdict == "identical"


def test_backtest_command_writes_every_file(store: Path, tmp_path: Path) -> None:
    universe = tmp_path / "universe.json"
    universe.write_text(_universe().model_dump_json())
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    out = tmp_path / "out"
    assert main(["backtest", str(policy), "--history", str(store), "--universe", str(universe), "--start",
                 "2025-09-01", "--end", "2025-09-10", "--every", "1d", "--nav", "1000000", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"nav.csv", "weights.csv", "metrics.json", "decisions", "report.html",
                                               "cumulative.png", "weights.png"}
    nav = pd.read_csv(out / "nav.csv")
    assert list(nav.columns) == ["date", "policy", "buy_and_hold", "equal_weight", "rate_chasing"]
    assert len(list((out / "decisions").iterdir())) == 10
    metrics = json.loads((out / "metrics.json").read_text())["strategies"]
    assert set(metrics["policy"]) >= {"realized_apy", "volatility", "max_drawdown", "turnover", "costs",
                                      "rebalances", "breach_days"}


def test_sweep_gives_the_same_table_on_one_and_two_workers(store: Path, tmp_path: Path) -> None:
    from bondfolio.backtest.sweep import run_sweep

    universe = tmp_path / "universe.json"
    universe.write_text(_universe().model_dump_json())
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\n"objective.risk_aversion" = [5.0, 50.0]\n"constraints.max_weight.max" = [0.3, 0.5]\n')
    args = (POLICY, grid, store, universe, START, date(2025, 9, 15), "7d", 1_000_000.0)
    one = run_sweep(*args, workers=1, progress=lambda _: None).drop(columns=["seconds"])
    two = run_sweep(*args, workers=2, progress=lambda _: None).drop(columns=["seconds"])
    assert len(one) == 4 and one["error"].isna().all()
    pd.testing.assert_frame_equal(one, two)
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\n"constraints.max_weight.max" = [0.3, 0.1]\n')  # 6 markets x 10 % cannot be invested
    table = run_sweep(POLICY, bad, store, universe, START, date(2025, 9, 8), "7d", 1_000_000.0, workers=2,
                      progress=lambda _: None)
    assert table.loc[0, "error"] is None or pd.isna(table.loc[0, "error"])
    assert "InfeasibleError" in table.loc[1, "error"]  # reported, and the sweep went on


# ---------------------------------------------------------------------------------------------- imports
def test_bad_history_rows_are_named(tmp_path: Path) -> None:
    head = DATA.read_text().splitlines()[0]
    row = "2025-07-22,arbitrum,DAI,0xda10009cbd5d07dd0cecc66161fc93d7c9000da1,18,{rate},0.054485,{index},1.249767," \
          "0.25,True,False,False,True,1753219006"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([head, row.format(rate="0.036", index="1.15"), row.format(rate="0.036", index="1.15"),
                              row.format(rate="abc", index="1.15").replace("07-22", "07-23"),
                              row.format(rate="3.6", index="1.15").replace("07-22", "07-24")]) + "\n")
    with HistoryStore(tmp_path / "s.duckdb") as s, pytest.raises(InputError) as err:
        import_aave_daily(bad, s)
    text = str(err.value)
    assert "bad.csv row 3: aave-v3:arbitrum:DAI on 2025-07-22 appears twice (first at row 2)" in text
    assert "bad.csv row 4, field 'current_liquidity_rate': 'abc' is not a number" in text
    assert "bad.csv row 5, field 'current_liquidity_rate': 3.6 is not a decimal APR" in text and "percent" in text
    with HistoryStore(tmp_path / "s.duckdb") as s:
        assert s.series().empty  # nothing written


def test_gaps_are_counted_and_ambiguous_symbols_carry_the_address(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "s.duckdb") as s:
        report = import_aave_daily(DATA, s)
        names = set(s.series()["series"])
    assert "aave-v3:arbitrum:USDC@0xaf88d065" in names and "aave-v3:arbitrum:USDC@0xff970a61" in names
    assert "aave-v3:arbitrum:USDC" not in names  # never one name for two assets
    assert sum(report.gaps.values()) > 0


def test_defillama_and_snapshot_imports(tmp_path: Path, example_paths: dict[str, Path]) -> None:
    charts = tmp_path / "charts"
    charts.mkdir()
    (tmp_path / "pools.json").write_text(json.dumps({"data": [
        {"pool": "p1", "chain": "Ethereum", "project": "aave-v3", "symbol": "USDC", "tvlUsd": 1e8},
        {"pool": "p2", "chain": "Base", "project": "morpho-blue", "symbol": "USDC", "tvlUsd": 5e7}]}))
    (charts / "p1.json").write_text(json.dumps({"data": [
        {"timestamp": "2025-01-01T00:00:00.000Z", "tvlUsd": 1e8, "apy": 4.0, "apyBase": 4.0},
        {"timestamp": "2025-01-02T00:00:00.000Z", "tvlUsd": 1e8, "apy": 4.1, "apyBase": 4.1}]}))
    (charts / "p2.json").write_text(json.dumps({"data": [
        {"timestamp": "2025-01-01T00:00:00.000Z", "tvlUsd": 5e7, "apy": 6.0, "apyBase": 6.0}]}))
    with HistoryStore(tmp_path / "s.duckdb") as s:
        report = import_defillama(tmp_path / "pools.json", charts, s)
        frame = s.frame(["aave-v3:ethereum:USDC", "morpho-blue:base:USDC"])
    apy = dict(zip(frame["series"] + "@" + frame["date"].astype(str), frame["apy"], strict=True))
    # Aave's apyBase is a simple APR in percent: compounded per second; Morpho's is an APY already
    year = 365 * 86400
    assert apy["aave-v3:ethereum:USDC@2025-01-01"] == pytest.approx(np.expm1(year * np.log1p(0.04 / year)))
    assert apy["morpho-blue:base:USDC@2025-01-01"] == pytest.approx(0.06)
    assert any("simple APR" in n for n in report.notes)
    folder = tmp_path / "snaps"
    folder.mkdir()
    (folder / "a.json").write_text(example_paths["snapshot"].read_text())
    with HistoryStore(tmp_path / "t.duckdb") as s:
        rep = import_snapshots(folder, s)
        assert rep.rows == 33 and all(n.startswith("snapshot:") for n in rep.series)
