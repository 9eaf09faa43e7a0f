"""``bondfolio backtest``: a policy replayed day by day on real history, against baselines, with costs.

At each rebalance day ``t`` (every ``every`` days from ``start``):

- the snapshot as of ``t`` from the store: each series' latest observation on or before ``t`` (never
  after: the no-look-ahead test perturbs the future and checks every earlier decision is unchanged);
- the risk model from trailing history only: :func:`bondfolio.inputs.history.estimate_risk` on the
  ``risk_window`` days up to ``t`` (re-estimated every ``risk_every`` days); until ``min_days`` of
  history exist, the documented factor prior (:mod:`bondfolio.adapters.risk`), said in the step's
  snapshot description;
- the holdings carried forward; the decision (gated by ``bondfolio rebalance-check`` with ``--gate``),
  on one compiled program whose Parameters are updated each step (rebuilt only when the program's
  shape changes: a market frozen, the risk model's factors); every step's decision is a sealed record
  in ``decisions/``, so any day can be replayed and explained;
- its costs: proportional trading costs (``objective.trading_cost_bp``), ``[execution] gas_per_leg`` per
  traded position and ``[execution] bridge_cost_bp`` on money moved between chains;

then accrual at the realized returns: for Aave data the ratio of ``liquidity_index`` between days
(exact to the data's 6-decimal rounding), for other series the reported APY compounded daily (an
approximation). Idle cash earns ``objective.cash_apy``.

Baselines on the same data and costs: ``buy_and_hold`` (the policy's first allocation, held),
``equal_weight`` (equal weights over the depositable markets at the same cadence), ``rate_chasing``
(everything into the best current APY, filling each market up to the policy's ``max_weight`` caps,
the naive bot), and with ``--gate`` ``policy_ungated`` beside the gated ``policy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from bondfolio.adapters.risk import RiskPrior, factor_prior
from bondfolio.constraints.variables import Point
from bondfolio.errors import InputError
from bondfolio.execution.gate import rebalance_check
from bondfolio.inputs.base import StrictModel, read_document, validate_document
from bondfolio.inputs.history import estimate_risk
from bondfolio.inputs.holdings import load_holdings
from bondfolio.inputs.kinds import Kind, Tier
from bondfolio.inputs.policy import Policy, load_policy
from bondfolio.inputs.snapshot import Snapshot, load_snapshot
from bondfolio.inputs.store import HistoryStore
from bondfolio.inputs.universe import Universe
from bondfolio.solver.decision import Decision
from bondfolio.solver.program import Program, effective_constraints

__all__ = ["BacktestResult", "UniverseFile", "backtest", "load_universe"]

STRATEGIES = ("policy", "buy_and_hold", "equal_weight", "rate_chasing")


class UniverseEntry(StrictModel):
    """One opportunity of a backtest, mapped to a history series."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:/@+-]+$")
    series: str
    """``source:network:symbol`` as ``bondfolio history import`` names it."""
    protocol: str
    chain: str
    asset: str
    kind: Kind = Kind.floating
    tier: Tier = Tier.core
    risk_score: float = Field(ge=0.0, le=1.0)
    duration: float = Field(default=0.0, ge=0.0)
    tags: tuple[str, ...] = ()
    available_liquidity: float | None = Field(default=None, ge=0.0)
    """Base currency, where the data has none."""
    tvl: float | None = Field(default=None, ge=0.0)


class UniverseFile(StrictModel):
    opportunities: tuple[UniverseEntry, ...] = Field(min_length=1)


def load_universe(path: str | Path) -> UniverseFile:
    return validate_document(UniverseFile, read_document(path), f"universe file '{path}'")


@dataclass
class StrategyState:
    name: str
    values: np.ndarray
    """Base currency per opportunity."""
    cash: float
    nav: list[float] = field(default_factory=list)
    weights: list[tuple[date, np.ndarray]] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=lambda: {"trading": 0.0, "gas": 0.0, "bridge": 0.0})
    turnover: float = 0.0
    rebalances: int = 0
    breach_days: int = 0

    @property
    def total(self) -> float:
        return float(self.values.sum() + self.cash)


@dataclass
class BacktestResult:
    dates: list[date]
    strategies: dict[str, StrategyState]
    ids: list[str]
    decisions: dict[date, dict[str, Any]]
    notes: list[str]
    seconds_per_step: float
    rebuilds: int

    def nav_frame(self) -> pd.DataFrame:
        return pd.DataFrame({s: st.nav for s, st in self.strategies.items()}, index=pd.Index(self.dates, name="date"))

    def weights_frame(self) -> pd.DataFrame:
        rows = [{"date": d, "strategy": s, "id": i, "weight": float(w[k])}
                for s, st in self.strategies.items() for d, w in st.weights for k, i in enumerate(self.ids)]
        return pd.DataFrame(rows)

    def metrics(self) -> dict[str, dict[str, Any]]:
        out = {}
        for s, st in self.strategies.items():
            nav = np.asarray(st.nav)
            days = (self.dates[-1] - self.dates[0]).days or 1
            r = np.diff(np.log(nav))
            peak = np.maximum.accumulate(nav)
            out[s] = {"realized_apy": float((nav[-1] / nav[0]) ** (365 / days) - 1),
                      "volatility": float(np.std(r, ddof=1) * math.sqrt(365)) if r.size > 1 else 0.0,
                      "max_drawdown": float(np.max(1 - nav / peak)), "turnover": st.turnover,
                      "costs": dict(st.costs), "rebalances": st.rebalances, "breach_days": st.breach_days,
                      "final_nav": float(nav[-1])}
        return out


def _parse_every(every: str) -> int:
    if every not in ("1d", "7d") and not (every.endswith("d") and every[:-1].isdigit() and int(every[:-1]) > 0):
        raise InputError(f"--every {every!r}: give a number of days such as 1d or 7d")
    return int(every[:-1])


class _Data:
    """The store's observations as date x opportunity tables, forward-filled (as of each day, the latest
    observation on or before it)."""

    def __init__(self, store: HistoryStore, uni: UniverseFile, first: date, last: date) -> None:
        self.ids = [e.id for e in uni.opportunities]
        names = [e.series for e in uni.opportunities]
        raw = store.frame(names, first, last)
        by_series = {e.series: e.id for e in uni.opportunities}
        raw["id"] = raw["series"].map(by_series)
        days = pd.Index([first + timedelta(days=k) for k in range((last - first).days + 1)], name="date")

        def table(column: str) -> pd.DataFrame:
            t = raw.pivot_table(index="date", columns="id", values=column, aggfunc="last")
            return t.reindex(index=days, columns=self.ids)

        self.observed = table("apy")
        self.apy = self.observed.ffill()
        self.index = table("liquidity_index").ffill()
        flags = raw.assign(blocked=raw["frozen"].fillna(False) | raw["paused"].fillna(False))
        self.blocked = flags.pivot_table(index="date", columns="id", values="blocked", aggfunc="last").reindex(
            index=days, columns=self.ids).ffill().fillna(False).astype(bool)
        self.tvl = table("tvl").ffill()

    def growth(self, day: date, cash_apy: float) -> tuple[np.ndarray, float]:
        """Per opportunity, the value growth from ``day`` to the next day; and cash's."""
        nxt = day + timedelta(days=1)
        idx0, idx1 = self.index.loc[day].to_numpy(), self.index.loc[nxt].to_numpy()
        apy = np.nan_to_num(self.apy.loc[day].to_numpy(), nan=0.0)
        g = np.where(np.isfinite(idx0) & np.isfinite(idx1) & (idx0 > 0), idx1 / np.where(idx0 > 0, idx0, 1.0),
                     (1 + apy) ** (1 / 365))
        return g, (1 + cash_apy) ** (1 / 365)


def _snapshot(uni: UniverseFile, data: _Data, day: date, risk: dict[str, Any] | None, note: str) -> Snapshot:
    opps = []
    apy = data.apy.loc[day]
    for e in uni.opportunities:
        a = apy[e.id]
        if not np.isfinite(a):
            raise InputError(f"series {e.series} ({e.id}) has no observation on or before {day}: start later")
        tvl = data.tvl.loc[day][e.id]
        o: dict[str, Any] = {"id": e.id, "protocol": e.protocol, "chain": e.chain, "asset": e.asset,
                             "kind": e.kind.value, "tier": e.tier.value, "apy": float(a), "duration": e.duration,
                             "risk_score": e.risk_score, "tags": list(e.tags),
                             "depositable": not bool(data.blocked.loc[day][e.id])}
        if e.available_liquidity is not None:
            o["available_liquidity"] = e.available_liquidity
        if e.tvl is not None or np.isfinite(tvl):
            o["tvl"] = e.tvl if e.tvl is not None else float(tvl)
        opps.append(o)
    snap = {"schema": "bondfolio.snapshot/1", "description": f"backtest step {day}: {note}",
            "as_of": {"timestamp": f"{day.isoformat()}T00:00:00Z"}, "base_currency": "USD", "opportunities": opps,
            "risk": risk or {"factors": factor_prior(opps, RiskPrior())}}
    return load_snapshot(snap)


def _risk(uni: UniverseFile, data: _Data, day: date, window: int, min_days: int, snap: Snapshot
          ) -> tuple[dict[str, Any] | None, str]:
    start = day - timedelta(days=window)
    hist = data.observed.loc[start:day].copy()  # trailing only: nothing after `day`
    hist.columns = [f"apy:{c}" for c in hist.columns]
    hist.index = pd.DatetimeIndex(hist.index, name="date")
    try:
        est = estimate_risk(hist, snap, "ledoit-wolf", min_days)
    except InputError as exc:
        return None, f"risk: factor prior ({str(exc).splitlines()[0][:120]})"
    return est.snapshot.risk.model_dump(mode="json", by_alias=True), f"risk: estimated from {est.days} trailing days"


def _costs(pol: Policy, u: Universe, trade: np.ndarray, chains: list[str]) -> dict[str, float]:
    """One-off costs of trading ``trade`` (base currency per opportunity)."""
    from bondfolio.solver.objective import trading_costs

    rates = trading_costs(u, pol)
    settings = pol.execution
    legs = int(np.sum(np.abs(trade) > 1e-6 * max(u.nav, 1.0)))
    gas = (settings.gas_per_leg or 0.0) * legs if settings is not None else 0.0
    flows: dict[str, float] = {}
    for c, t in zip(chains, trade, strict=True):
        flows[c] = flows.get(c, 0.0) + t
    bridged = sum(v for v in flows.values() if v > 0) if len(flows) > 1 else 0.0
    bridge = bridged * (settings.bridge_cost_bp if settings is not None else 0.0) / 1e4
    return {"trading": float(rates @ np.abs(trade)), "gas": gas, "bridge": bridge}


def _rate_chasing(u: Universe, pol: Policy) -> np.ndarray:
    """Everything into the best current APY, each market up to its ``max_weight`` cap (the naive bot)."""
    caps = np.ones(u.n)
    for c in pol.constraints:
        if c.kind == "max_weight":
            rows = c.resolve(u)  # type: ignore[attr-defined]
            idx = np.asarray(rows.structure["idx"], dtype=int)
            caps[idx] = np.minimum(caps[idx], rows.upper)
    w = np.zeros(u.n)
    room = 1.0
    deposit = np.array([o.depositable for o in u.snapshot.opportunities])
    for i in np.argsort(-np.asarray(u.apy), kind="stable"):
        if not deposit[i] or room <= 0:
            continue
        w[i] = min(caps[i], room)
        room -= w[i]
    return w


def backtest(policy: Any, history: str | Path, universe: str | Path | UniverseFile, start: date, end: date,
             every: str = "7d", nav: float = 1_000_000.0, gate: bool = False, risk_window: int = 120,
             risk_every: int = 7, min_days: int = 30, out: Path | None = None,
             progress: Any = None) -> BacktestResult:
    """Run the backtest (see the module docstring); with ``out``, each step's decision record is
    written to ``out/decisions/<date>.json``."""
    import time

    pol = load_policy(policy)
    if pol.nav is not None:
        raise InputError(f"policy '{pol.name}' sets nav = {pol.nav:g}: a backtest's NAV starts at --nav and then is "
                         "what the holdings are worth: drop nav from the policy")
    uni = universe if isinstance(universe, UniverseFile) else load_universe(universe)
    if end <= start:
        raise InputError(f"--end {end} is not after --start {start}")
    step = _parse_every(every)
    if nav <= 0:
        raise InputError(f"--nav {nav} must be positive")
    with HistoryStore(history, read_only=True) as store:
        data = _Data(store, uni, start - timedelta(days=risk_window), end)
    ids = data.ids
    chains = [e.chain for e in uni.opportunities]
    names = ["policy", *(["policy_ungated"] if gate else []), "buy_and_hold", "equal_weight", "rate_chasing"]
    states = {n: StrategyState(n, np.zeros(len(ids)), nav) for n in names}
    decisions: dict[date, dict[str, Any]] = {}
    notes: list[str] = []
    program: Program | None = None
    rebuilds = 0
    risk: dict[str, Any] | None = None
    risk_note = ""
    rows_cache: dict[str, tuple[Universe, list[Any]]] = {}
    first = np.zeros(len(ids))
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    timer = 0.0
    for k, day in enumerate(days):
        if k % step == 0:
            t0 = time.perf_counter()
            if k % (step * max(1, risk_every // step)) == 0 or risk is None:
                probe = _snapshot(uni, data, day, None, "risk probe")
                risk, risk_note = _risk(uni, data, day, risk_window, min_days, probe)
            snap = _snapshot(uni, data, day, risk, risk_note)
            for name, st in states.items():
                if name == "buy_and_hold" and k > 0:
                    continue
                hold = load_holdings({"positions": {i: float(v) for i, v in zip(ids, st.values, strict=True) if v > 0},
                                      "cash": max(st.total - float(st.values.sum()), 0.0)})
                u = Universe.build(snap, hold, None)  # NAV = the holdings' worth, as a replay computes it
                if name == "buy_and_hold":
                    w = first  # the policy's first (ungated) allocation, then held
                elif name in ("policy", "policy_ungated"):
                    use_gate = gate and name == "policy"
                    if use_gate:
                        verdict = rebalance_check(snap, pol, hold)
                        w = np.array([t.weight for t in verdict.target]) if verdict.verdict == "act" else \
                            np.asarray(u.w0)
                        record = verdict.decision
                    else:
                        program, rebuilt = _program(program, u, pol)
                        rebuilds += rebuilt
                        sol = program.solve(reuse=True)
                        dec = Decision(snap, pol, hold, program, sol)
                        w = sol.point.w
                        record = dec.to_dict() if name == "policy" else None
                        if k == 0:
                            first = w.copy()
                    if name == "policy" and record is not None:
                        decisions[day] = record
                        if out is not None:
                            _write(out / "decisions" / f"{day.isoformat()}.json", record)
                elif name == "equal_weight":
                    deposit = np.array([o.depositable for o in snap.opportunities], dtype=float)
                    w = deposit / max(deposit.sum(), 1.0)
                else:
                    w = _rate_chasing(u, pol)
                target = w * st.total
                trade = target - st.values
                cost = _costs(pol, u, trade, chains)
                paid = sum(cost.values())
                if np.any(np.abs(trade) > 1e-6 * st.total):
                    st.rebalances += 1
                    st.turnover += float(np.sum(np.abs(trade)) / st.total)
                for key, v in cost.items():
                    st.costs[key] += v
                total = st.total - paid
                st.values = w * total
                st.cash = total - float(st.values.sum())
                rows_cache[name] = (u, [(c, c.resolve(u)) for c in effective_constraints(pol, snap.opportunities)])
            timer += time.perf_counter() - t0
            if progress is not None:
                progress(f"{day}: step {k // step + 1}")
        for name, st in states.items():
            total = st.total
            w_now = st.values / total if total > 0 else st.values
            st.weights.append((day, w_now))
            st.nav.append(total)
            if name in rows_cache and _breached(*rows_cache[name], w_now, st.cash / total, pol):
                st.breach_days += 1
            if day < end:
                g, gc = data.growth(day, pol.objective.cash_apy)
                st.values = st.values * g
                st.cash *= gc
    steps = len(range(0, len(days), step))
    if program is None and not gate:
        notes.append("no program was built")
    return BacktestResult(days, states, ids, decisions, notes, timer / max(steps, 1), rebuilds)


def _program(program: Program | None, u: Universe, pol: Policy) -> tuple[Program, int]:
    if program is not None:
        try:
            program.update(u)
            return program, 0
        except (InputError, ValueError):
            pass  # the program's shape changed (a market frozen, the risk model's factors): build anew
    return Program(u, pol), 1


def _breached(u: Universe, rows: list[Any], w: np.ndarray, cash: float, pol: Policy) -> bool:
    """Whether drifted weights break a constraint (rows resolved at the last rebalance; 1e-6 of NAV of
    slack for round-off)."""
    x = Point(w, cash)
    tol = max(pol.solver.check_tolerance, 1e-6)
    return any(res.violation > tol for c, r in rows for res in c.check(x, u, r))


def _write(path: Path, record: dict[str, Any]) -> None:
    from bondfolio.solver.record import dump_record

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dump_record(record, finite=True), encoding="utf-8")  # a JSON-mode dump
    tmp.replace(path)

