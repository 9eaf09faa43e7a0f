"""The small hand-made book the family tests share (numbers worked out by hand in each test)."""


from __future__ import annotations

import numpy as np

from bondfolio.constraints import Point
from bondfolio.inputs import Holdings, Universe, load_policy, load_snapshot
from tests.factories import opportunity, policy, snapshot

NAV = 1_000_000.0

def universe(holdings: Holdings | None = None) -> Universe:
    opps = [
        opportunity("a", 0.05, protocol="aave-v3", chain="ethereum", risk_score=0.1, available_liquidity=200_000.0,
                    tvl=4_000_000.0, tags=["oracle:chainlink", "issuer:circle"]),
        opportunity("b", 0.06, protocol="aave-v3", chain="base", risk_score=0.2, available_liquidity=50_000.0,
                    tvl=1_000_000.0, tags=["oracle:chainlink"], exposures={"delta:ETH": 0.5}),
        opportunity("c", 0.08, protocol="pendle", kind="fixed", duration=0.5, risk_score=0.4, tier="yield",
                    withdrawal_delay_days=3.0, tvl=500_000.0, tags=["oracle:pendle-twap", "issuer:ethena"]),
        opportunity("h", -0.01, protocol="swaps", kind="hedge", tier="hedge", duration=-2.0, risk_score=0.3),
    ]
    cov = np.diag([1e-4, 4e-4, 9e-4, 1e-4])
    cov[0, 1] = cov[1, 0] = 1e-4
    return Universe.build(load_snapshot(snapshot(opps, cov=cov)), holdings, NAV)

W = np.array([0.3, 0.25, 0.4, -0.05])

X = Point(W, 0.05)

def rows(kind: dict, u: Universe | None = None, x: Point = X) -> dict[str, tuple[float, float, float]]:
    u = u or universe()
    (c,) = load_policy(policy(kind)).constraints
    return {r.row: (r.value, r.lower, r.upper) for r in c.check(x, u)}  # type: ignore[attr-defined]
