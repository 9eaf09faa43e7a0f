"""The history factor model: loadings recovered from series built with known ones, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bondfolio.errors import InputError
from bondfolio.inputs.history import ACCRUAL_SCALE, PRICE_SCALE, estimate_risk, read_history
from tests.factories import opportunity, snapshot

OPPS = [opportunity("a1", 0.05, protocol="aave", asset="USDC"),
        opportunity("a2", 0.05, protocol="aave", asset="USDT"),
        opportunity("c1", 0.05, protocol="comp", asset="USDC"),
        opportunity("pt", 0.08, protocol="pendle", asset="USDe", kind="fixed", duration=1.5,
                    maturity="2028-01-01T00:00:00Z")]


def history(days: int = 500, seed: int = 1) -> pd.DataFrame:
    """APYs that follow the rate one for one plus random walks of their own, and noisy prices."""
    rng = np.random.default_rng(seed)
    rate = 0.04 + np.cumsum(rng.normal(0, 0.001, days))
    aave = np.cumsum(rng.normal(0, 0.0005, days))
    return pd.DataFrame({
        "date": pd.date_range("2025-01-01", periods=days).strftime("%Y-%m-%d"), "rate": rate,
        "apy:a1": rate + 0.01 + aave + np.cumsum(rng.normal(0, 0.0002, days)),
        "apy:a2": rate + 0.012 + aave + np.cumsum(rng.normal(0, 0.0002, days)),
        "apy:c1": rate + 0.008 + np.cumsum(rng.normal(0, 0.0003, days)),
        "apy:pt": rate + 0.03 + np.cumsum(rng.normal(0, 0.0005, days)),
        "price:USDC": 1 + rng.normal(0, 0.0001, days), "price:USDT": 1 + rng.normal(0, 0.0002, days),
        "price:USDe": 1 + rng.normal(0, 0.001, days)})


def test_loadings_match_the_construction(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    history().to_csv(path, index=False)
    est = estimate_risk(path, snapshot(OPPS))
    f = est.snapshot.risk.factors
    assert f is not None and f.names == ("rate", "depeg:USDC", "depeg:USDT", "depeg:USDe", "protocol:aave")
    b = dict(zip(est.snapshot.ids, f.loadings, strict=True))
    # floating APYs move one for one with the rate: accrual loading sqrt(365/3); the 1.5-year PT's price
    # moves -1.5 per unit of its own yield, which follows the rate: -1.5 sqrt(365). Standard errors of
    # these regressions (500 days, R2 ~ 0.9) are a few percent; 10 % leaves room
    for oid in ("a1", "a2", "c1"):
        assert b[oid][0] == pytest.approx(ACCRUAL_SCALE, rel=0.1)
    assert b["pt"][0] == pytest.approx(-1.5 * PRICE_SCALE, rel=0.1)
    # price returns enter one for one, annualized: sqrt(365) (exact up to the regression's noise)
    assert b["a1"][1] == pytest.approx(PRICE_SCALE, rel=0.02)
    assert b["pt"][3] == pytest.approx(PRICE_SCALE, rel=0.1)
    assert b["c1"][4] == 0.0 and b["a1"][4] == pytest.approx(1.0, rel=0.05)  # comp has one market: no factor
    assert est.shrinkage is not None and 0.0 <= est.shrinkage <= 1.0
    assert est.observations == {"a1": 499, "a2": 499, "c1": 499, "pt": 499}


def test_model_variance_matches_the_sample_variance_of_the_shocks() -> None:
    frame = history(days=800, seed=3)
    est = estimate_risk(frame, snapshot(OPPS), method="sample")
    dapy = frame["apy:c1"].diff()
    shock = ACCRUAL_SCALE * dapy + PRICE_SCALE * frame["price:USDC"].pct_change()
    # with the plain sample covariance, factors plus residuals reproduce the shocks' own variance up to
    # the degrees-of-freedom correction and pairwise samples (well under 2 %)
    assert est.volatility["c1"] == pytest.approx(float(shock.std()), rel=0.02)


def test_gaps_are_allowed_and_counted() -> None:
    frame = history()
    frame.loc[100:140, "apy:c1"] = np.nan
    est = estimate_risk(frame, snapshot(OPPS))
    assert est.observations["c1"] == 499 - 42  # 41 missing values break 42 daily changes


def test_short_history_names_each_opportunity() -> None:
    frame = history(days=40)
    with pytest.raises(InputError, match=r"opportunities 'a1' \(39 days\), 'a2' \(39 days\).* fewer than 60"):
        estimate_risk(frame, snapshot(OPPS))


def test_missing_series_is_short_history() -> None:
    frame = history().drop(columns=["apy:c1"])
    with pytest.raises(InputError, match=r"'c1' \(0 days\)"):
        estimate_risk(frame, snapshot(OPPS))


@pytest.mark.parametrize(("column", "value", "message"), [
    ("apy:zz", "0.01", "names opportunity 'zz', which the snapshot lacks"),
    ("price:ETH", "1.0", "prices asset 'ETH', which no opportunity holds"),
    ("weird", "1.0", "history column 'weird' is none of"),
])
def test_unknown_columns(column: str, value: str, message: str) -> None:
    frame = history()
    frame[column] = value
    frame[column] = frame[column].astype(float) if column != "weird" else frame[column]
    with pytest.raises(InputError, match=message):
        estimate_risk(frame.astype(str), snapshot(OPPS))


def test_bad_cells_named(tmp_path: Path) -> None:
    frame = history().astype(str)
    frame.loc[5, "apy:a1"] = "n/a"
    frame.loc[7, "date"] = "yesterday"
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_history(path)
    assert "history row 9: date 'yesterday' is not an ISO date" in str(err.value)
    assert "history column 'apy:a1' row 7: 'n/a' is not a number" in str(err.value)


def test_rate_inferred_from_floating_apys_without_a_rate_column() -> None:
    est = estimate_risk(history().drop(columns=["rate"]), snapshot(OPPS))
    f = est.snapshot.risk.factors
    assert f is not None and f.names[0] == "rate"
    assert f.loadings[0][0] == pytest.approx(ACCRUAL_SCALE, rel=0.15)
