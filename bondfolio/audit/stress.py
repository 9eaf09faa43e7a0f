"""``stress``: the loss of a decision's allocation in every scenario, worst first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bondfolio.inputs.base import validate_document
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


def stress(decision: Decision | DecisionRecord | str | Path | dict[str, Any],
           snapshot: Snapshot | str | Path | dict[str, Any] | None = None,
           scenarios: ScenarioSettings | str | Path | dict[str, Any] | None = None) -> StressReport:
    """Losses of a decision's allocation under a scenario set.

    ``decision`` is a :class:`Decision` or its record (file, text or mapping; verified on load).
    ``snapshot`` defaults to the one embedded in the record; one given must be the one the decision
    was made from (its sha256 is checked). ``scenarios`` default to the decision's ``cvar``
    constraint's, else to :class:`ScenarioSettings` defaults.
    """
    rec = load_decision(decision.to_dict() if isinstance(decision, Decision) else decision)
    record = rec.data
    snap = rec.input("snapshot", snapshot)
    if scenarios is None:
        specs = [c for c in record["provenance"]["effective_policy"]["constraints"] if c.get("kind") == "cvar"]
        settings = (validate_document(ScenarioSettings, specs[0]["scenarios"], "the decision's cvar scenarios")
                    if specs else ScenarioSettings())
    else:
        settings = load_scenarios(scenarios)
    weights = {a["id"]: a["weight"] for a in record["allocation"]}
    u = Universe.build(snap, None, float(record["metrics"]["nav"]))
    w = np.array([weights[i] for i in u.ids])
    s = build_scenarios(u, settings)
    losses = s.portfolio_losses(w)
    frame = pd.DataFrame({"kind": s.kinds, "probability": s.probability, "loss": losses,
                          "loss_amount": losses * u.nav}, index=pd.Index(s.names, name="scenario"))
    frame = frame.sort_values("loss", ascending=False, kind="stable")
    summary = {"expected loss": float(s.probability @ losses)}
    for level in LEVELS:
        summary[f"CVaR {level:g}"] = cvar(losses, s.probability, level)[0]
    return StressReport(frame, u.nav, summary)
