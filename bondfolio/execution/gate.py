"""``bondfolio rebalance-check``: move only when it pays, or when something forces a move.

The gate weighs, in one number, what a move gains against what it costs:

- **gain**: the objective without its one-off costs (yield on the exact rate curves, less failure
  loss and risk, in APY units) at the gated target minus at the current holdings, accrued over
  ``[rebalance] horizon_days``: ``gain = (f(target) - f(current)) x horizon / 365 x NAV`` (base
  currency; also in bp of NAV);
- **costs**: what the move pays once: the gas of every leg (the plan's per-protocol estimates at the
  snapshot's base fee, or ``[execution] gas_per_leg``), Pendle slippage and the proportional trading
  costs, in base currency.

The gated target is the decision of the policy with those one-off costs charged against the horizon
(``objective.cost_horizon_days = horizon_days``) and with fixed costs and ``min_trade`` inside it
(:mod:`bondfolio.solver.mixed`), so it is the best move net of its costs, and "no move" is among the
candidates. The verdict is ``act`` when the net gain clears ``max(min_net_gain, min_net_gain_bp x
NAV / 1e4)`` (and is positive), else ``hold``.

**Must-act triggers** override the threshold and the cooldown, each reported with its numbers: the
current holdings break a hard constraint (a cap breached because a pool shrank, a duration band left
as PTs aged, a liquidity buffer lost); a held market is frozen, paused or deprecated (not
depositable); a held market's asset trades below ``1 - depeg_threshold``; a held market is more
utilized than ``max_utilization``; a held position matures inside the horizon. Markets behind the last
four are exited in the gated target (``max_weight = 0``); a breached constraint is simply restored, so
a market above a cap it now breaches moves down to exactly its cap. Then the gate proposes the best move
that clears every trigger, even when its net gain is negative.

**Pacing**: ``min_interval_hours`` since the last decision (``--last``) holds (unless a trigger fires);
``max_turnover`` caps the move's turnover.

The verdict is a typed record, sealed by ``verdict_sha256``; on ``act`` it carries the decision record
and, when the holdings name their account (``bondfolio holdings``), its plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bondfolio.constraints.variables import Point
from bondfolio.errors import BondfolioError
from bondfolio.execution.plan import Plan, build_plan
from bondfolio.inputs.base import canonical_json, sha256_hex
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.policy import ExecutionSettings, Policy, RebalanceSettings, load_policy
from bondfolio.inputs.snapshot import AdaptiveCurve, KinkedCurve, Snapshot, load_snapshot
from bondfolio.inputs.universe import Universe
from bondfolio.solver.api import allocate
from bondfolio.solver.decision import TRADE_EPSILON, Decision
from bondfolio.solver.program import Program, effective_constraints
from bondfolio.solver.record import dump_record, load_decision

__all__ = ["HOLD_EXIT", "VERDICT_SCHEMA", "Trigger", "Verdict", "rebalance_check"]

VERDICT_SCHEMA = "bondfolio.verdict/1"
#: Exit code of ``rebalance-check`` on ``hold`` (0 on ``act``), so ``rebalance-check && plan`` composes.
HOLD_EXIT = 7


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Trigger(_Part):
    """A reason to act whatever the gain."""

    kind: Literal["breach", "frozen", "depeg", "utilization", "maturity"]
    id: str | None
    """The market, where the trigger is one market's."""
    detail: str
    """In plain language, with the numbers."""


class TargetRow(_Part):
    id: str
    weight: float
    amount: float
    current_weight: float


class Verdict(_Part):
    """The gate's answer."""

    schema_id: str = Field(VERDICT_SCHEMA, alias="schema")
    verdict_sha256: str = ""
    verdict: Literal["act", "hold"]
    reasons: list[str]
    """In plain language, the first one the verdict's own."""
    triggers: list[Trigger]
    policy: str
    as_of: str
    nav: float
    horizon_days: float
    gain: dict[str, float]
    """``over_horizon`` (base currency), ``bp`` (of NAV), ``annual`` (APY units)."""
    costs: dict[str, float]
    """One-off, base currency: ``gas``, ``slippage``, ``trading``, ``total``."""
    net_gain: float
    threshold: float
    positions_moved: int
    turnover: float
    target: list[TargetRow]
    cash_weight: float
    decision: dict[str, Any] | None
    """The gated decision's sealed record (on ``act``)."""
    plan: dict[str, Any] | None
    """Its plan (on ``act``, when the holdings name their account)."""
    notes: list[str]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return dump_record(self.to_dict(), finite=True)

    def sealed(self) -> Verdict:
        """The verdict with ``verdict_sha256`` set: the sha256 of its canonical JSON without the seal and
        without the gated decision's ``timing`` (which the decision's own seal leaves out too), so equal
        verdicts on equal inputs seal alike however long the solve took."""
        return self.model_copy(update={"verdict_sha256": sha256_hex(canonical_json(self.sealed_content(),
                                                                                   finite=True))})

    def sealed_content(self) -> dict[str, Any]:
        """What ``verdict_sha256`` covers (see :meth:`sealed`)."""
        data = self.to_dict()
        data.pop("verdict_sha256", None)
        if isinstance(data.get("decision"), dict):
            data["decision"] = {k: v for k, v in data["decision"].items() if k != "timing"}
        return data

    def line(self) -> str:
        return self.reasons[0]

    def table(self) -> str:
        lines = [f"{self.verdict.upper()}: {self.reasons[0]}"]
        lines += [f"  {r}" for r in self.reasons[1:]]
        c = self.costs
        lines.append(f"gain over {self.horizon_days:g} days {self.gain['over_horizon']:,.2f} "
                     f"({self.gain['bp']:+.2f} bp of NAV); costs {c['total']:,.2f} (gas {c['gas']:,.2f}, slippage "
                     f"{c['slippage']:,.2f}, trading {c['trading']:,.2f}); net {self.net_gain:,.2f} against a "
                     f"threshold of {self.threshold:,.2f}")
        moved = [t for t in self.target if abs(t.weight) > 5e-5 or abs(t.weight - t.current_weight) > 5e-5]
        lines.append(f"target ({self.positions_moved} positions move, turnover {self.turnover:.2%}):")
        lines += [f"  {t.id:<40} {t.current_weight:>8.2%} -> {t.weight:>8.2%} {t.amount:>16,.0f}" for t in moved]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _held(u: Universe, tol: float) -> np.ndarray:
    return np.asarray(u.w0) > tol


def triggers(u: Universe, policy: Policy, settings: RebalanceSettings) -> list[Trigger]:
    """Every must-act trigger at the current holdings (see the module docstring)."""
    out: list[Trigger] = []
    tol = policy.solver.check_tolerance
    x0 = Point(np.asarray(u.w0, dtype=float), u.cash0)
    for c in effective_constraints(policy, u.snapshot.opportunities):
        if not c.relaxable:
            continue  # the budget and long-only hold by construction; frozen markets have their own trigger
        for r in c.check(x0, u):
            if r.violation > tol:
                out.append(Trigger(kind="breach", id=r.row if u.index_of(r.row) is not None else None,
                                   detail=f"the current holdings break {r.constraint}[{r.row}]: {r.value:.6g} outside "
                                          f"[{r.lower:.6g}, {r.upper:.6g}] (by {r.violation:.3g} {r.unit})"))
    held = _held(u, tol)
    horizon = u.snapshot.as_of.timestamp + timedelta(days=settings.horizon_days)
    for i, o in enumerate(u.snapshot.opportunities):
        if not held[i] or o.kind is Kind.hedge:
            continue
        amount = float(u.w0[i] * u.nav)
        if not o.depositable:
            out.append(Trigger(kind="frozen", id=o.id, detail=f"{o.id} is frozen, paused or deprecated (no deposits) "
                                                              f"and holds {amount:,.0f}: leave it"))
        price = o.execution.asset_price if o.execution is not None else (o.price if o.kind is Kind.floating else None)
        if price is not None and price < 1.0 - settings.depeg_threshold:
            out.append(Trigger(kind="depeg", id=o.id, detail=f"{o.asset} of {o.id} is at {price:.4f}, below "
                                                             f"{1 - settings.depeg_threshold:.4f} (depeg_threshold "
                                                             f"{settings.depeg_threshold:g}); {amount:,.0f} held"))
        curve = o.rate_curve
        if isinstance(curve, KinkedCurve | AdaptiveCurve) and curve.total_supply > 0:
            util = curve.total_borrow / curve.total_supply
            if util > settings.max_utilization:
                out.append(Trigger(kind="utilization", id=o.id,
                                   detail=f"{o.id} is {util:.2%} utilized, above max_utilization "
                                          f"{settings.max_utilization:.2%}: withdrawals of the {amount:,.0f} held are "
                                          "at risk"))
        if o.maturity is not None and o.maturity <= horizon:
            out.append(Trigger(kind="maturity", id=o.id, detail=f"{o.id} matures {o.maturity.isoformat()}, inside the "
                                                                f"{settings.horizon_days:g}-day horizon"))
    return out


def _without_one_off(program: Program, x: Point) -> float:
    return float(sum(t.sign * t.value(x) for t in program.terms if (t.active or t.linear) and not t.one_off))


SnapshotLike = Snapshot | str | Path | Mapping[str, Any]
PolicyLike = Policy | str | Path | Mapping[str, Any]
HoldingsLike = Holdings | str | Path | Mapping[str, Any]


def rebalance_check(snapshot: SnapshotLike, policy: PolicyLike, holdings: HoldingsLike, last: Any = None,
                    safe: str | None = None, multisend: str | None = None) -> Verdict:
    """The gate's verdict for moving from ``holdings`` under ``policy`` on ``snapshot`` (see the module
    docstring). ``last`` is the last decision record (for the cooldown); ``safe`` overrides the
    holdings' account for the plan, ``multisend`` the MultiSendCallOnly address (a local node)."""
    snap = load_snapshot(snapshot)  # type: ignore[arg-type]
    pol = load_policy(policy)  # type: ignore[arg-type]
    hold = load_holdings(holdings)  # type: ignore[arg-type]
    settings = pol.rebalance or RebalanceSettings()
    u = Universe.build(snap, hold, pol.nav)
    found = triggers(u, pol, settings)
    exits = sorted({t.id for t in found if t.kind != "breach" and t.id is not None})
    extra: list[dict[str, Any]] = []
    if exits:
        extra.append({"kind": "max_weight", "name": "gate:exit", "limits": {i: 0.0 for i in exits}})
    if settings.max_turnover is not None:
        extra.append({"kind": "turnover", "name": "gate:max_turnover", "max": settings.max_turnover})
    gated = pol.model_dump(mode="json", by_alias=True)
    gated["constraints"] = [*gated["constraints"], *extra]
    gated["objective"]["cost_horizon_days"] = settings.horizon_days
    if pol.execution is None:
        gated["execution"] = ExecutionSettings().model_dump(mode="json")
    decision = allocate(snap, gated, hold)
    return _verdict(decision, u, pol, settings, found, last, safe or hold.account, multisend)


def _verdict(d: Decision, u: Universe, pol: Policy, settings: RebalanceSettings, found: list[Trigger], last: Any,
             safe: str | None, multisend: str | None) -> Verdict:
    program = d.program
    x0 = Point(np.asarray(u.w0, dtype=float), u.cash0)
    x1 = d.solution.point
    nav = u.nav
    days = settings.horizon_days
    annual = _without_one_off(program, x1) - _without_one_off(program, x0)
    gain = annual * days / 365.0 * nav
    one_off = {t.name: t.amount(x1) * nav for t in program.terms if t.one_off and t.active}
    costs = {"gas": one_off.get("fixed_cost", 0.0), "slippage": one_off.get("slippage", 0.0),
             "trading": one_off.get("trading_cost", 0.0)}
    costs["total"] = costs["gas"] + costs["slippage"] + costs["trading"]
    net = gain - costs["total"]
    threshold = max(settings.min_net_gain, settings.min_net_gain_bp * nav / 1e4)
    dw = x1.w - np.asarray(u.w0)
    moved = int(np.sum(np.abs(dw) > TRADE_EPSILON))
    notes = list(getattr(program.fixed_cost, "notes", []))
    gwei = _gwei(u)
    what = f"moving {moved} position{'s' if moved != 1 else ''} gains {gain:,.0f} {u.snapshot.base_currency} over " \
           f"{days:g} days, costs {costs['total']:,.0f} {u.snapshot.base_currency}" + (
               f" (gas {costs['gas']:,.0f} at {gwei})" if gwei else "")
    reasons: list[str] = []
    verdict: Literal["act", "hold"]
    if found:
        verdict = "act"
        reasons.append(f"act: must act ({len(found)} trigger{'s' if len(found) > 1 else ''}); {what}, net {net:,.0f}")
        reasons += [t.detail for t in found]
    elif moved == 0:
        verdict = "hold"
        reasons.append(f"hold: no move clears its costs over {days:g} days (the best target is the current holdings)")
    else:
        cooling = _cooldown(last, u, settings)
        if cooling is not None:
            verdict = "hold"
            reasons.append(f"hold: {cooling}; {what}")
        elif net > 0 and net >= threshold:
            verdict = "act"
            reasons.append(f"act: {what}, net {net:,.0f} clears the threshold {threshold:,.0f}")
        else:
            verdict = "hold"
            reasons.append(f"hold: {what}, net {net:,.0f} below the threshold {max(threshold, 0.0):,.0f}")
    target = [TargetRow(id=i, weight=float(w), amount=float(w * nav), current_weight=float(w0))
              for i, w, w0 in zip(u.ids, x1.w, u.w0, strict=True)]
    decision_data = d.to_dict() if verdict == "act" else None
    plan: Plan | None = None
    if decision_data is not None and safe is not None:
        try:
            plan = build_plan(d.record, safe, multisend)
        except BondfolioError as exc:  # the plan is an extra here, reported; `bondfolio plan` shows it in full
            notes.append(f"no plan: {exc}")
    elif decision_data is not None:
        notes.append("no plan: the holdings name no account (read them with 'bondfolio holdings' or pass --safe)")
    return Verdict(verdict=verdict, reasons=reasons, triggers=found, policy=pol.name,
                   as_of=u.snapshot.as_of.timestamp.isoformat(), nav=nav, horizon_days=days,
                   gain={"over_horizon": gain, "bp": gain / nav * 1e4, "annual": annual}, costs=costs, net_gain=net,
                   threshold=threshold, positions_moved=moved, turnover=float(np.sum(np.abs(dw))), target=target,
                   cash_weight=float(x1.cash), decision=decision_data,
                   plan=None if plan is None else plan.to_dict(), notes=notes).sealed()


def _gwei(u: Universe) -> str:
    fees = sorted({b.base_fee_wei for b in u.snapshot.as_of.chains.values() if b.base_fee_wei is not None})
    return ", ".join(f"{f / 1e9:.3g} gwei" if f >= 10**6 else f"{f} wei" for f in fees)


def _cooldown(last: Any, u: Universe, settings: RebalanceSettings) -> str | None:
    if last is None or settings.min_interval_hours <= 0:
        return None
    record = load_decision(last)
    then = datetime.fromisoformat(record.as_of)
    hours = (u.snapshot.as_of.timestamp - then).total_seconds() / 3600
    if hours < settings.min_interval_hours:
        return (f"the last decision was {hours:.1f} h ago, less than min_interval_hours "
                f"{settings.min_interval_hours:g}")
    return None
