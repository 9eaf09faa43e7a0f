"""A default factor risk model for a freshly read snapshot, and its RISK.toml overrides.

Until a history-based model is estimated (``bondfolio risk-model``), a snapshot read from the chain
gets this documented prior (annual, decimal returns):

- ``rate``: the short-rate level, ``rate_vol`` (default 1 %); floating positions load ``+0.25`` (their
  accrual follows rates), fixed ones ``0.25 - duration`` (price falls by duration times the move);
- ``asset:<symbol>``: one depeg factor per asset, ``asset_vol`` (default 0.5 %, per symbol in
  ``[assets]``); loading 1;
- ``protocol:<name>``: one factor per protocol, ``protocol_vol`` (default 0.8 %, per name in
  ``[protocols]``); loading 1;
- specific variance ``(specific_base + specific_per_risk * risk_score) ** 2`` (defaults 0.2 % and 3 %).

RISK.toml keys: ``rate_vol``, ``asset_vol``, ``protocol_vol``, ``specific_base``, ``specific_per_risk``,
``[assets] USDC = 0.004``, ``[protocols] pendle = 0.015``. All factors are independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bondfolio.inputs.base import StrictModel, read_document, validate_document

__all__ = ["RiskPrior", "factor_prior", "load_risk_prior"]


class RiskPrior(StrictModel):
    """Volatilities of the default factor model (annual, decimal)."""

    rate_vol: float = Field(default=0.01, ge=0.0)
    asset_vol: float = Field(default=0.005, ge=0.0)
    protocol_vol: float = Field(default=0.008, ge=0.0)
    specific_base: float = Field(default=0.002, ge=0.0)
    specific_per_risk: float = Field(default=0.03, ge=0.0)
    assets: dict[str, float] = Field(default_factory=dict)
    protocols: dict[str, float] = Field(default_factory=dict)


def load_risk_prior(path: str | Path | None) -> RiskPrior:
    if path is None:
        return RiskPrior()
    return validate_document(RiskPrior, read_document(path), f"risk file '{path}'")


def factor_prior(opportunities: Sequence[dict[str, Any]], prior: RiskPrior) -> dict[str, Any]:
    """``risk.factors`` for the opportunities (dicts with kind, duration, asset, protocol, risk_score)."""
    assets = sorted({o["asset"] for o in opportunities})
    protocols = sorted({o["protocol"] for o in opportunities})
    names = ["rate", *(f"asset:{a}" for a in assets), *(f"protocol:{p}" for p in protocols)]
    col = {n: j for j, n in enumerate(names)}
    loadings = np.zeros((len(opportunities), len(names)))
    specific = np.zeros(len(opportunities))
    for i, o in enumerate(opportunities):
        loadings[i, 0] = 0.25 if o["kind"] in ("floating", "vault") else 0.25 - o["duration"]
        loadings[i, col[f"asset:{o['asset']}"]] = 1.0
        loadings[i, col[f"protocol:{o['protocol']}"]] = 1.0
        specific[i] = (prior.specific_base + prior.specific_per_risk * o["risk_score"]) ** 2
    vols = [prior.rate_vol, *(prior.assets.get(a, prior.asset_vol) for a in assets),
            *(prior.protocols.get(p, prior.protocol_vol) for p in protocols)]
    return {"names": names, "loadings": loadings.tolist(), "factor_covariance": np.diag(np.square(vols)).tolist(),
            "specific_variance": specific.tolist()}
