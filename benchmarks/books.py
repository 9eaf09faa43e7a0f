"""Synthetic books for the benchmarks: n opportunities, a factor risk model, every constraint family.

Deterministic for a given (n, seed). The policy is built around a known feasible point, so every
size solves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bondfolio.inputs import Holdings, Policy, Snapshot, load_holdings, load_policy, load_snapshot

PROTOCOLS = ["aave-v3", "compound-v3", "morpho-blue", "metamorpho", "sky", "pendle", "rwa", "spark", "fluid", "euler"]
ASSETS = ["USDC", "USDT", "DAI", "USDS", "USDe", "GHO"]
NAV = 100_000_000.0


def factor_model(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loadings (n x k), factor covariance (k x k) and specific variances of plausible size."""
    loadings = rng.normal(0.0, 1.0, (n, k))
    a = rng.normal(0.0, 0.004, (k, k))
    fcov = a @ a.T + np.diag(rng.uniform(1e-6, 1e-5, k))
    spec = rng.uniform(1e-6, 1e-4, n)
    return loadings, fcov, spec


def book(n: int, k: int = 20, seed: int = 0, dense: bool = False) -> tuple[Snapshot, Policy, Holdings]:
    """A snapshot, a policy using every constraint family, and holdings, for ``n`` opportunities."""
    rng = np.random.default_rng(seed)
    w_star = rng.dirichlet(np.ones(n)) * 0.98
    apy = rng.uniform(0.02, 0.12, n)
    fixed = rng.random(n) < 0.3
    duration = np.where(fixed, rng.uniform(0.05, 2.0, n), 0.0)
    risk = rng.uniform(0.02, 0.5, n)
    delay = np.where(rng.random(n) < 0.2, 7.0, 0.0)
    protocol = [PROTOCOLS[i] for i in rng.integers(0, len(PROTOCOLS), n)]
    asset = [ASSETS[i] for i in rng.integers(0, len(ASSETS), n)]
    liquidity = NAV * w_star / rng.uniform(0.02, 0.2, n) + 1e6
    tvl = liquidity * rng.uniform(2.0, 10.0, n)
    opps = [{
        "id": f"opp-{i:05d}", "protocol": protocol[i], "chain": "ethereum", "asset": asset[i],
        "kind": "fixed" if fixed[i] else "floating", "apy": float(apy[i]), "duration": float(duration[i]),
        "available_liquidity": float(liquidity[i]), "tvl": float(tvl[i]), "risk_score": float(risk[i]),
        "tier": "core" if risk[i] < 0.2 else "yield", "withdrawal_delay_days": float(delay[i]),
        "tags": [f"issuer:{asset[i].lower()}"],
    } for i in range(n)]
    loadings, fcov, spec = factor_model(n, k, rng)
    risk_model: dict[str, Any]
    if dense:
        risk_model = {"covariance": loadings @ fcov @ loadings.T + np.diag(spec)}
    else:
        risk_model = {"factors": {"loadings": loadings, "factor_covariance": fcov, "specific_variance": spec}}
    snapshot = load_snapshot({"schema": "bondfolio.snapshot/1", "as_of": {"timestamp": "2026-11-20T00:00:00Z"},
                              "base_currency": "USD", "opportunities": opps, "risk": risk_model})
    w0 = rng.dirichlet(np.ones(n)) * 0.95
    holdings = load_holdings({"positions": {o["id"]: float(w0[i] * NAV) for i, o in enumerate(opps)},
                              "cash": 0.05 * NAV})
    groups = {p: float(sum(w_star[i] for i in range(n) if protocol[i] == p)) for p in set(protocol)}
    cov_w = loadings @ (fcov @ (loadings.T @ w_star)) + spec * w_star
    vol_star = float(np.sqrt(w_star @ cov_w))
    constraints = [
        {"kind": "budget", "allow_cash": True, "max_cash": 0.05},
        {"kind": "max_weight", "max": float(w_star.max()) * 1.5},
        {"kind": "min_weight", "limits": {opps[0]["id"]: float(w_star[0]) * 0.5}},
        {"kind": "group_cap", "by": "protocol", "limits": {p: min(1.0, v + 0.02) for p, v in groups.items()}},
        {"kind": "group_floor", "by": "tier", "limits": {"core": 0.1}},
        {"kind": "duration", "target": float(duration @ w_star), "tolerance": 0.05},
        {"kind": "liquidity_share", "max_share": 0.25},
        {"kind": "tvl_share", "max_share": 0.1},
        {"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.3},
        {"kind": "risk_budget", "max": float(risk @ w_star) + 0.02},
        {"kind": "max_volatility", "max": vol_star * 1.2},
        {"kind": "turnover", "max": float(np.abs(w_star - w0).sum()) + 0.1},
        {"kind": "exposure", "attribute": "withdrawal_delay_days", "max": 2.0},
    ]
    policy = load_policy({"name": f"bench-{n}", "nav": NAV, "objective": {"risk_aversion": 20.0,
                                                                          "trading_cost_bp": 3.0},
                          "constraints": constraints})
    return snapshot, policy, holdings
