"""``bondfolio monitor``: one read-only pass for a cron job or an agent.

At the latest block of every chain of MARKETS.toml: the snapshot (``bondfolio snapshot``), with
failure-source news given as overrides; the health of every held market (frozen or paused,
utilization, free liquidity against our position, the asset's price); the drift of the holdings (the
constraints they break now, and their distance from the last decision's target); and the gate's verdict
(:mod:`bondfolio.execution.gate`). The result is one JSON event and one human line; files are written
into the output folder only on success, each atomically.

Overrides (``--overrides FILE``, JSON or TOML): ``failure`` replaces the snapshot's failure model (news:
"oracle X is compromised" as a source with a high probability), and ``opportunities`` maps ids to
fields to replace (``{"aave-v3-usdc": {"depositable": false}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bondfolio.adapters.snapshot import read_snapshot
from bondfolio.errors import InputError
from bondfolio.execution.gate import Verdict, rebalance_check
from bondfolio.inputs.base import read_document
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.snapshot import AdaptiveCurve, KinkedCurve, Snapshot, load_snapshot
from bondfolio.solver.record import load_decision

__all__ = ["MonitorReport", "apply_overrides", "monitor"]


def apply_overrides(snapshot: Snapshot, overrides: Mapping[str, Any] | None, label: str = "overrides") -> Snapshot:
    """The snapshot with ``failure`` and per-opportunity fields replaced (validated again)."""
    if not overrides:
        return snapshot
    unknown = sorted(set(overrides) - {"failure", "opportunities"})
    if unknown:
        raise InputError(f"{label}: unknown keys {unknown}: use 'failure' and 'opportunities'")
    data = snapshot.model_dump(mode="json", by_alias=True)
    if "failure" in overrides:
        data["failure"] = overrides["failure"]
    changes = overrides.get("opportunities", {})
    ids = {o["id"]: o for o in data["opportunities"]}
    missing = sorted(set(changes) - set(ids))
    if missing:
        raise InputError(f"{label}: opportunities {missing} are not in the snapshot")
    for oid, fields in changes.items():
        ids[oid].update(fields)
    return load_snapshot(data)


class MonitorReport:
    """The pass's findings: health per held market, drift, the verdict."""

    def __init__(self, snapshot: Snapshot, holdings: Holdings, verdict: Verdict, health: list[dict[str, Any]],
                 drift: dict[str, Any]) -> None:
        self.snapshot, self.holdings, self.verdict, self.health, self.drift = snapshot, holdings, verdict, health, drift

    def event(self) -> dict[str, Any]:
        """One JSON event."""
        return {"event": "bondfolio.monitor", "as_of": self.snapshot.as_of.timestamp.isoformat(),
                "blocks": {c: b.block_number for c, b in self.snapshot.as_of.chains.items()},
                "verdict": self.verdict.verdict, "must_act": bool(self.verdict.triggers),
                "reason": self.verdict.reasons[0], "triggers": [t.model_dump() for t in self.verdict.triggers],
                "health": self.health, "drift": self.drift, "net_gain": self.verdict.net_gain,
                "verdict_sha256": self.verdict.verdict_sha256}

    def line(self) -> str:
        """One human line."""
        blocks = ", ".join(f"{c} #{b.block_number}" for c, b in self.snapshot.as_of.chains.items())
        must = f"MUST ACT ({len(self.verdict.triggers)} triggers) " if self.verdict.triggers else ""
        return f"[{blocks}] {must}{self.verdict.reasons[0]}"


def _health(snapshot: Snapshot, holdings: Holdings) -> list[dict[str, Any]]:
    out = []
    for o in snapshot.opportunities:
        held = holdings.positions.get(o.id, 0.0)
        if held <= 0 or o.kind is Kind.hedge:
            continue
        curve = o.rate_curve
        util = (curve.total_borrow / curve.total_supply if isinstance(curve, KinkedCurve | AdaptiveCurve)
                and curve.total_supply > 0 else None)
        free = o.available_liquidity
        out.append({"id": o.id, "held": held, "depositable": o.depositable, "utilization": util,
                    "free_liquidity": free, "liquidity_cover": None if free is None or held <= 0 else free / held,
                    "asset_price": o.execution.asset_price if o.execution is not None else o.price, "apy": o.apy})
    return out


def monitor(markets: str | Path, rpc: Mapping[str, str], policy: Any, holdings: Any, last: Any = None,
            overrides: str | Path | None = None, multisend: str | None = None) -> MonitorReport:
    """One monitoring pass (see the module docstring); nothing is written here."""
    snapshot, _ = read_snapshot(markets, rpc)
    if overrides is not None:
        raw = read_document(overrides)
        if not isinstance(raw, dict):
            raise InputError(f"overrides file '{overrides}' must hold a table")
        snapshot = apply_overrides(snapshot, raw, f"overrides file '{overrides}'")
    hold = load_holdings(holdings)
    verdict = rebalance_check(snapshot, policy, hold, last, multisend=multisend)
    drift: dict[str, Any] = {"breaches": [t.detail for t in verdict.triggers if t.kind == "breach"]}
    if last is not None:
        record = load_decision(last)
        target = {a.id: a.weight for a in record.allocation}
        nav = verdict.nav
        current = {o.id: hold.positions.get(o.id, 0.0) / nav for o in snapshot.opportunities}
        ids = sorted(set(target) | set(current))
        drift["from_last_target"] = float(np.sum([abs(current.get(i, 0.0) - target.get(i, 0.0)) for i in ids]))
        drift["last_decision"] = record.sha256
    return MonitorReport(snapshot, hold, verdict, _health(snapshot, hold), drift)
