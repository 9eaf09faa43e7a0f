"""``stress``: the loss of a decision's allocation in every scenario, worst first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bondfolio.constraints.cvar import CVaR
from bondfolio.errors import InputError
from bondfolio.inputs.base import canonical_json, validate_document
from bondfolio.inputs.scenarios import ScenarioSettings, build_scenarios, cvar, load_scenarios
from bondfolio.inputs.snapshot import Snapshot
from bondfolio.inputs.universe import Universe
from bondfolio.solver.decision import Decision
from bondfolio.solver.record import DecisionRecord, load_decision

__all__ = ["StressReport", "stress"]

#: CVaR levels the report summarizes.
LEVELS: tuple[float, ...] = (0.95, 0.99)


class StressReport:
    """Per scenario: probability and the portfolio's loss (fraction of NAV and amount), worst first."""

    def __init__(self, frame: pd.DataFrame, nav: float, summary: dict[str, float]) -> None:
        self.frame = frame
        self.nav = nav
        self.summary = summary

    def to_dict(self) -> dict[str, Any]:
        return {"nav": self.nav, "summary": self.summary,
                "scenarios": [{"name": name, **{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}}
                              for name, row in self.frame.to_dict(orient="index").items()]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def table(self, limit: int = 30) -> str:
        lines = [f"{'scenario':<40} {'kind':<8} {'probability':>11} {'loss':>9} {'loss amount':>16}"]
        for name, r in self.frame.head(limit).iterrows():
            lines.append(f"{str(name)[:40]:<40} {r['kind']:<8} {r['probability']:>11.4%} {r['loss']:>9.3%} "
                         f"{r['loss_amount']:>16,.0f}")
        if len(self.frame) > limit:
            lines.append(f"... {len(self.frame) - limit} more scenarios (see --format json)")
        lines.append("")
        lines.append("   ".join(f"{k} {v:.3%}" for k, v in self.summary.items()))
        return "\n".join(lines) + "\n"


def _record_scenarios(rec: DecisionRecord, constraint: str | None) -> ScenarioSettings:
    """The scenarios of the record's ``cvar`` constraint named ``constraint`` (or its only one)."""
    found = [validate_document(CVaR, c, f"{rec.label}: cvar constraint")
             for c in rec.constraint_specs() if c.get("kind") == "cvar"]
    if constraint is not None:
        chosen = [c for c in found if c.label == constraint]
        if not chosen:
            raise InputError(f"{rec.label} has no cvar constraint '{constraint}' (its cvar constraints: "
                             f"{[c.label for c in found]}): pass one of those labels")
        return chosen[0].scenarios
    distinct = {canonical_json(c.scenarios.model_dump(mode="json")) for c in found}
    if len(distinct) > 1:
        raise InputError(f"{rec.label} has {len(found)} cvar constraints with different scenarios "
                         f"({[c.label for c in found]}): choose one with --constraint LABEL (constraint=...) or "
                         "pass --scenarios FILE")
    return found[0].scenarios if found else ScenarioSettings()


def stress(decision: Decision | DecisionRecord | str | Path | dict[str, Any],
           snapshot: Snapshot | str | Path | dict[str, Any] | None = None,
           scenarios: ScenarioSettings | str | Path | dict[str, Any] | None = None,
           constraint: str | None = None) -> StressReport:
    """Losses of a decision's allocation under a scenario set.

    ``decision`` is a :class:`Decision` or its record (file, text or mapping; verified on load).
    ``snapshot`` defaults to the one embedded in the record; one given must be the one the decision
    was made from (its sha256 is checked). ``scenarios`` default to the scenarios of the decision's
    ``cvar`` constraint (the one labelled ``constraint`` when the policy has several with different
    scenarios: never silently the first), else to :class:`ScenarioSettings` defaults.
    """
    rec = decision.record if isinstance(decision, Decision) else load_decision(decision)
    snap = rec.input("snapshot", snapshot)
    if scenarios is not None:
        if constraint is not None:
            raise InputError("give either scenarios or constraint, not both")
        settings = load_scenarios(scenarios)
    else:
        settings = _record_scenarios(rec, constraint)
    u = Universe.build(snap, None, rec.nav)
    w = rec.weight_vector(u.ids)
    s = build_scenarios(u, settings)
    losses = s.portfolio_losses(w)
    frame = pd.DataFrame({"kind": s.kinds, "probability": s.probability, "loss": losses,
                          "loss_amount": losses * u.nav}, index=pd.Index(s.names, name="scenario"))
    frame = frame.sort_values("loss", ascending=False, kind="stable")
    summary = {"expected loss": float(s.probability @ losses)}
    for level in LEVELS:
        summary[f"CVaR {level:g}"] = cvar(losses, s.probability, level)[0]
    return StressReport(frame, u.nav, summary)
