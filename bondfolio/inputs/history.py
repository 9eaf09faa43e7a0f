"""A factor risk model estimated from daily history of yields and prices.

History is a CSV with a ``date`` column (ISO dates, one row per day) and one column per series:

- ``apy:<opportunity id>``: the opportunity's APY that day (decimal);
- ``price:<asset>``: the asset's price in the base currency (for depegs);
- ``rate`` (optional): a reference rate level (decimal). Without it the rate level is the mean APY
  of the floating-rate opportunities with data that day.

Empty cells are missing values. The model of each opportunity's one-year return ``R_i`` is:

- accrual: a floating or vault position earns the average APY over the year. If the APY moves as a
  random walk with daily changes ``dapy``, that average deviates with variance ``365 / 3 * var(dapy)``,
  so its daily shock is ``sqrt(365 / 3) * dapy``. A fixed-rate position has its yield locked: no accrual
  risk.
- price: ``-duration * dy`` with ``dy`` the change of its own yield (fixed) or of the rate level
  (everything else, hedges included), a daily shock of ``-D * sqrt(365) * dy``;
- depeg: the asset's price return, ``sqrt(365) * dp / p``, plus ``delta:<asset>`` exposures.

The annual covariance of those shocks is estimated as a factor model ``B F B' + diag(d)``:

- factors: ``rate`` (rate level changes), ``depeg:<asset>`` (price returns, one per priced asset),
  ``protocol:<p>`` and ``chain:<c>`` (for groups of at least two opportunities with history: the
  mean, over members, of their shocks left after the rate and depeg factors);
- ``B``: per opportunity, least squares of its shocks on the factors it belongs to (rate, its asset,
  its protocol, its chain);
- ``F``: covariance of the daily factor changes over the days where all are observed, shrunk by
  Ledoit-Wolf or OAS (scikit-learn), or the plain sample covariance;
- ``d``: the residual variance of each regression (degrees of freedom corrected).

Nothing is patched silently: an opportunity with fewer than ``min_days`` observed shocks, a series
the snapshot does not know, or a non positive semi-definite estimate is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bondfolio.errors import InputError
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.snapshot import PSD_TOLERANCE, FactorRisk, RiskModel, Snapshot, load_snapshot

__all__ = ["ACCRUAL_SCALE", "PRICE_SCALE", "RiskEstimate", "estimate_risk", "read_history"]

#: Daily APY changes to the variance of a year's average APY (random walk: T / 3 with T = 365).
ACCRUAL_SCALE = np.sqrt(365.0 / 3.0)
#: Daily price returns to annual (random walk: 365 days).
PRICE_SCALE = np.sqrt(365.0)

Method = Literal["ledoit-wolf", "oas", "sample"]


@dataclass
class RiskEstimate:
    """The estimated snapshot and what the estimate rests on."""

    snapshot: Snapshot
    factors: list[str]
    days: int
    """Days in the history."""
    factor_days: int
    """Days on which every factor is observed (the factor covariance's sample)."""
    shrinkage: float | None
    """Shrinkage intensity chosen by Ledoit-Wolf or OAS (None for the sample covariance)."""
    observations: dict[str, int] = field(default_factory=dict)
    """Observed daily shocks per opportunity."""
    r_squared: dict[str, float] = field(default_factory=dict)
    volatility: dict[str, float] = field(default_factory=dict)
    """Annual volatility per opportunity implied by the model."""

    def report(self) -> dict[str, Any]:
        return {"factors": self.factors, "days": self.days, "factor_days": self.factor_days,
                "shrinkage": self.shrinkage, "observations": self.observations, "r_squared": self.r_squared,
                "volatility": self.volatility}


def read_history(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The history as a float DataFrame indexed by date (sorted), one column per series."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        from io import StringIO

        from bondfolio.inputs.base import read_text_file

        text = read_text_file(Path(source))
        if not text.strip():
            raise InputError(f"history '{source}' is empty: it needs a header (date, apy:<id>, ...) and rows")
        try:
            frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise InputError(f"history '{source}' cannot be read as CSV: {exc}") from None
    if "date" not in frame.columns:
        raise InputError(f"history has no 'date' column (columns: {list(frame.columns)[:8]})")
    problems = []
    dates = pd.to_datetime(frame["date"], errors="coerce", format="ISO8601")
    for row in np.flatnonzero(dates.isna().to_numpy()):
        problems.append(f"history row {row + 2}: date {frame['date'].iloc[row]!r} is not an ISO date")
    dupes = dates[dates.duplicated()].dropna()
    if len(dupes):
        problems.append(f"history repeats dates {[d.date().isoformat() for d in dupes[:5]]}: one row per day")
    out = {}
    for col in frame.columns:
        if col == "date":
            continue
        if not (col == "rate" or col.startswith(("apy:", "price:"))):
            problems.append(f"history column '{col}' is none of 'apy:<id>', 'price:<asset>', 'rate'")
            continue
        if pd.api.types.is_numeric_dtype(frame[col]):  # a DataFrame given directly: NaN is missing
            values = frame[col].astype(float)
        else:
            text = frame[col].astype(str).str.strip()
            values = pd.to_numeric(text.where(text != "", None), errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy() & (text != "").to_numpy())
            if bad.size:
                problems.append(f"history column '{col}' row {bad[0] + 2}: {text.iloc[bad[0]]!r} is not a number")
        huge = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)) & values.notna().to_numpy()
                              | (np.abs(values.fillna(0.0).to_numpy(dtype=float)) > 1e6))
        if huge.size:
            problems.append(f"history column '{col}' row {huge[0] + 2}: {values.iloc[huge[0]]!r} is infinite or "
                            "beyond 1e6 (APYs are decimals, prices base currency per token)")
        if col.startswith("price:") and (values <= 0).any():
            problems.append(f"history column '{col}' has a price <= 0")
        out[col] = values.to_numpy(dtype=float)
    InputError.collect(problems, "history")
    result = pd.DataFrame(out, index=pd.DatetimeIndex(dates, name="date"))
    return result.sort_index()


def _shocks(hist: pd.DataFrame, snap: Snapshot, rate: pd.Series) -> pd.DataFrame:
    """Annualized daily return shocks per opportunity (columns by id), NaN where unobserved."""
    drate = rate.diff()
    out = {}
    for o in snap.opportunities:
        col = f"apy:{o.id}"
        dapy = hist[col].diff() if col in hist else pd.Series(np.nan, index=hist.index)
        if o.kind is Kind.fixed:
            z = -o.duration * PRICE_SCALE * dapy
        elif o.kind is Kind.hedge:
            z = -o.duration * PRICE_SCALE * drate
        else:
            z = ACCRUAL_SCALE * dapy - o.duration * PRICE_SCALE * drate
        price = f"price:{o.asset}"
        if o.kind is not Kind.hedge and price in hist:
            z = z + PRICE_SCALE * hist[price].pct_change(fill_method=None)
        for key, delta in o.exposures.items():
            if key.startswith("delta:") and f"price:{key[6:]}" in hist:
                z = z + delta * PRICE_SCALE * hist[f"price:{key[6:]}"].pct_change(fill_method=None)
        out[o.id] = z
    return pd.DataFrame(out, index=hist.index)


def estimate_risk(history: str | Path | pd.DataFrame, snapshot: Snapshot | str | Path | dict[str, Any],
                  method: Method = "ledoit-wolf", min_days: int = 60) -> RiskEstimate:
    """Estimate a factor risk model from ``history`` and return ``snapshot`` with it as ``risk.factors``.

    Raises
    ------
    InputError
        Unknown series, an opportunity without ``min_days`` observed shocks (each named with its
        count), too few days with every factor observed, or a non-PSD estimate.
    """
    snap = load_snapshot(snapshot)
    hist = read_history(history)
    ids = snap.ids
    problems = [f"history column '{c}' names opportunity '{c[4:]}', which the snapshot lacks"
                for c in hist.columns if c.startswith("apy:") and c[4:] not in set(ids)]
    assets = {o.asset for o in snap.opportunities} | {k[6:] for o in snap.opportunities for k in o.exposures
                                                       if k.startswith("delta:")}
    problems += [f"history column '{c}' prices asset '{c[6:]}', which no opportunity holds or hedges"
                 for c in hist.columns if c.startswith("price:") and c[6:] not in assets]
    InputError.collect(problems, "history")
    if "rate" in hist:
        rate = hist["rate"]
    else:
        floating = [f"apy:{o.id}" for o in snap.opportunities if o.kind in (Kind.floating, Kind.vault)
                    and f"apy:{o.id}" in hist]
        if not floating:
            raise InputError("history has no 'rate' column and no floating-rate APY series to infer the rate level "
                             "from: add a 'rate' column")
        rate = hist[floating].mean(axis=1, skipna=True)
    z = _shocks(hist, snap, rate)
    counts = z.notna().sum()
    short = [f"'{i}' ({int(counts[i])} days)" for i in ids if counts[i] < min_days]
    if short:
        raise InputError(f"opportunities {', '.join(short[:20])}{' ...' if len(short) > 20 else ''} have fewer than "
                         f"{min_days} observed daily changes in the history: extend the history, lower min_days, or "
                         "drop them from the snapshot", "history")

    # factors: rate, depegs, then protocol and chain groups built from what rate and depeg leave
    base = pd.DataFrame({"rate": rate.diff()})
    for col in hist.columns:
        if col.startswith("price:"):
            base[f"depeg:{col[6:]}"] = hist[col].pct_change(fill_method=None)

    def own(o: Any, frame: pd.DataFrame) -> list[str]:
        names = ["rate"]
        for key in (f"depeg:{o.asset}", *(f"depeg:{k[6:]}" for k in o.exposures if k.startswith("delta:"))):
            if key in frame and key not in names:
                names.append(key)
        return names

    residual = {}
    for o in snap.opportunities:
        _, res, _ = _regress(z[o.id], base[own(o, base)])
        residual[o.id] = res
    resid = pd.DataFrame(residual, index=hist.index)
    groups = pd.DataFrame(index=hist.index)
    for attr in ("protocol", "chain"):
        members: dict[str, list[str]] = {}
        for o in snap.opportunities:
            members.setdefault(getattr(o, attr), []).append(o.id)
        if len(members) < 2:
            continue  # one group only: it is the market as a whole, already in the rate factor
        for value, group in sorted(members.items()):
            if len(group) >= 2:
                groups[f"{attr}:{value}"] = resid[group].mean(axis=1, skipna=True)
    factors = pd.concat([base, groups], axis=1)
    names = list(factors.columns)
    n, k = len(ids), len(names)
    loadings = np.zeros((n, k))
    specific = np.zeros(n)
    r2: dict[str, float] = {}
    for row, o in enumerate(snap.opportunities):
        mine = [*own(o, factors), *(g for g in (f"protocol:{o.protocol}", f"chain:{o.chain}") if g in factors)]
        beta, _, (rss, dof, tss) = _regress(z[o.id], factors[mine])
        for name, b in zip(mine, beta, strict=True):
            loadings[row, names.index(name)] = b
        specific[row] = rss / max(dof, 1)
        r2[o.id] = float(1 - rss / tss) if tss > 0 else 0.0
    complete = factors.dropna()
    if len(complete) < min_days:
        raise InputError(f"only {len(complete)} days have every factor observed ({', '.join(names)}), fewer than "
                         f"min_days={min_days}: extend the history or fill the gaps in its price and rate columns",
                         "history")
    cov, shrinkage = _factor_covariance(factors, complete, method)
    eig = np.linalg.eigvalsh(cov)
    if eig[0] < -PSD_TOLERANCE * max(1.0, float(eig[-1])):
        raise InputError(f"the {method} factor covariance is not positive semi-definite (smallest eigenvalue "
                         f"{eig[0]:.3g}; pairwise-complete samples can do that): use method 'ledoit-wolf' or 'oas', "
                         "or fill the gaps", "history")
    risk = RiskModel(factors=FactorRisk(names=tuple(names), loadings=loadings, factor_covariance=cov,
                                        specific_variance=specific))
    data = snap.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["risk"] = risk.model_dump(mode="json", exclude_none=True)
    new = load_snapshot(data)
    variance = np.einsum("ij,jk,ik->i", loadings, cov, loadings) + specific
    return RiskEstimate(new, names, len(hist), len(complete), shrinkage, {i: int(counts[i]) for i in ids}, r2,
                        {i: float(np.sqrt(max(v, 0.0))) for i, v in zip(ids, variance, strict=True)})


def _regress(y: pd.Series, x: pd.DataFrame) -> tuple[np.ndarray, pd.Series, tuple[float, int, float]]:
    """Least squares of ``y`` on ``x`` (with an intercept, not reported) over the days both are
    observed: coefficients, residuals (NaN elsewhere), and (residual sum of squares, degrees of
    freedom, total sum of squares)."""
    data = pd.concat([y.rename("_y"), x], axis=1).dropna()
    a = np.column_stack([np.ones(len(data)), data[x.columns].to_numpy()])
    yv = data["_y"].to_numpy()
    coef, *_ = np.linalg.lstsq(a, yv, rcond=None)
    res = yv - a @ coef
    residuals = pd.Series(np.nan, index=y.index)
    residuals[data.index] = res
    tss = float(np.sum((yv - yv.mean()) ** 2))
    return coef[1:], residuals, (float(res @ res), len(yv) - a.shape[1], tss)


def _factor_covariance(factors: pd.DataFrame, complete: pd.DataFrame,
                       method: Method) -> tuple[np.ndarray, float | None]:
    if method == "sample":
        return np.asarray(factors.cov().to_numpy()), None  # pairwise complete
    from sklearn.covariance import OAS, LedoitWolf

    estimator = LedoitWolf() if method == "ledoit-wolf" else OAS()
    x = complete.to_numpy()
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    fit = estimator.fit(x / scale)  # shrink correlations: the factors' scales differ by orders of magnitude
    cov = np.asarray(fit.covariance_) * np.outer(scale, scale)
    return (cov + cov.T) / 2, float(fit.shrinkage_)
