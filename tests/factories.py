"""Shared test factories: paths of the bundled example, builders of small hand-checkable books, and a
re-sealer for records a test edits on purpose."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bondfolio.solver.api import allocate
from bondfolio.solver.decision import Decision
from bondfolio.solver.record import HASH_KEY, record_sha256

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "treasury"

AS_OF = "2026-11-20T00:00:00Z"


def opportunity(oid: str, apy: float, **extra: Any) -> dict[str, Any]:
    """A floating stablecoin deposit with sensible defaults; ``extra`` overrides any field."""
    base = {"id": oid, "protocol": "proto", "chain": "ethereum", "asset": "USDC", "kind": "floating",
            "apy": apy, "duration": 0.0, "risk_score": 0.1, "tier": "core"}
    base.update(extra)
    return base


def snapshot(opps: Sequence[dict[str, Any]], cov: np.ndarray | None = None,
             factors: dict[str, Any] | None = None) -> dict[str, Any]:
    """A snapshot mapping; diagonal 1e-4 covariance unless ``cov`` or ``factors`` is given."""
    n = len(opps)
    risk: dict[str, Any]
    if factors is not None:
        risk = {"factors": factors}
    else:
        risk = {"covariance": (np.eye(n) * 1e-4 if cov is None else np.asarray(cov)).tolist()}
    return {"schema": "bondfolio.snapshot/1", "as_of": {"timestamp": AS_OF}, "base_currency": "USD",
            "opportunities": list(copy.deepcopy(opps)), "risk": risk}


def policy(*constraints: dict[str, Any], nav: float | None = 1_000_000.0, gamma: float = 0.0,
           **extra: Any) -> dict[str, Any]:
    """A policy mapping with the given constraint tables."""
    out: dict[str, Any] = {"name": "test", "objective": {"risk_aversion": gamma}, "constraints": list(constraints)}
    if nav is not None:
        out["nav"] = nav
    out.update(extra)
    return out


def reseal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``record_sha256`` recomputed: a forged record that passes the seal, for tests of
    what readers do with content the seal alone cannot catch."""
    return {**record, HASH_KEY: record_sha256(record)}


#: Weights: the independent check's tolerance (solvers stop at a 1e-9 gap).
WTOL = 1e-7
#: bp figures from duals and re-solves: 1e-3 bp (duals are accurate to ~1e-7 in APY units).
BPTOL = 1e-3


def example_decision() -> Decision:
    """The bundled example treasury, allocated."""
    return allocate(EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json")


def two_assets() -> tuple[dict[str, Any], dict[str, Any]]:
    """A at 6 % capped at 30 %, B at 4 %: A 30 %, B 70 %; A's cap is worth 6 % - 4 % per unit."""
    snap = snapshot([opportunity("a", 0.06, protocol="pa"), opportunity("b", 0.04, protocol="pb")])
    return snap, policy({"kind": "max_weight", "limits": {"a": 0.3}})
