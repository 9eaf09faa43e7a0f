"""frontier: monotone in risk, containing the decision."""


from __future__ import annotations

import numpy as np
import pytest

import bondfolio
from bondfolio.audit.frontier import frontier
from tests.factories import (
    opportunity,
    policy,
    snapshot,
)


# ---------------------------------------------------------------------------------------------- frontier
def test_frontier_is_monotone_and_contains_the_decision() -> None:
    snap = snapshot([opportunity("a", 0.03), opportunity("b", 0.05), opportunity("c", 0.07)],
                    cov=np.diag([1e-5, 4e-4, 2.5e-3]))
    pol = policy({"kind": "max_weight", "max": 0.8}, gamma=20.0)
    f = frontier(snap, pol, points=12)
    frame = f.frame
    assert len(frame) == 12 and frame["risk_aversion"].is_monotonic_increasing
    assert np.all(np.diff(frame["expected_apy"]) <= 1e-9) and np.all(np.diff(frame["volatility"]) <= 1e-9)
    own = frame[frame["is_policy"]]
    d = bondfolio.allocate(snap, pol)
    assert len(own) == 1 and float(own["expected_apy"].iloc[0]) == pytest.approx(d.metrics["expected_apy"], abs=1e-7)
    # gamma = 0: the highest yield the caps allow (80 % c, 20 % b)
    assert float(frame["expected_apy"].iloc[0]) == pytest.approx(0.8 * 0.07 + 0.2 * 0.05, abs=1e-7)
    assert (frame["check_max_violation"] <= 1e-7).all()
