"""The objective as a sum of term objects (see :mod:`bondfolio.solver.objective.base`).

In order (the order the program adds them and reports list them)::

    maximize  yield + cash + curve_income
              - risk - trading_cost - slippage - carry - failure_loss - sum_k penalty_k

=================  ======  =============================================================
term               sign    magnitude (APY units, fractions of NAV)
=================  ======  =============================================================
``yield``          \\+      ``apy' w`` over positions without a rate curve
``cash``           \\+      ``cash_apy * c``
``risk``           \\-      ``(gamma / 2) w' Sigma w``
``trading_cost``   \\-      ``cost' |w - w0|`` (one-off)
``slippage``       \\-      AMM slippage of the trade (one-off)
``fixed_cost``     \\-      gas per traded position (one-off; policies with ``[execution]``)
``carry``          \\-      hedges' carry ``carry' |w_h|``
``failure_loss``   \\-      ``phi el' w`` (expected failure loss)
``penalty:<c>``    \\-      ``rho_c g_c(w)`` of each soft constraint ``c``
``curve_income``   \\+      exact income of rate-curve markets (a concave hull in the program)
=================  ======  =============================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bondfolio.constraints.base import Compiled
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term
from bondfolio.solver.objective.carry import Carry
from bondfolio.solver.objective.cash import Cash
from bondfolio.solver.objective.curves import CurveIncome, Slippage
from bondfolio.solver.objective.failure import FailureLoss
from bondfolio.solver.objective.fixed_cost import FixedCost
from bondfolio.solver.objective.income import Yield
from bondfolio.solver.objective.penalty import Penalty
from bondfolio.solver.objective.risk import Risk
from bondfolio.solver.objective.trading_cost import TradingCost, trading_costs
from bondfolio.solver.rate_impact import RateImpact

__all__ = ["Carry", "Cash", "CurveIncome", "FailureLoss", "FixedCost", "Penalty", "Risk", "Slippage", "Term",
           "TradingCost", "Yield", "objective_terms", "trading_costs"]


def objective_terms(universe: Universe, policy: Policy, compiled: Sequence[Compiled], hedge_idx: np.ndarray,
                    impact: RateImpact | None, with_risk: bool | None = None,
                    upper: np.ndarray | None = None) -> list[Term]:
    """Every term of ``policy``'s objective on ``universe``, in order (inactive ones included, so
    reports can name them)."""
    obj = policy.objective
    scale = 1.0 if obj.cost_horizon_days is None else 365.0 / obj.cost_horizon_days
    curve_idx = np.zeros(0, dtype=int) if impact is None else impact.idx
    terms: list[Term] = [
        Yield(universe, curve_idx),
        Cash(universe.n, obj.cash_apy),
        Risk(universe, obj.risk_aversion, bool(obj.risk_aversion > 0 if with_risk is None else with_risk)),
        TradingCost(universe, policy, scale),
    ]
    if impact is not None:
        terms.append(Slippage(impact, universe.n, scale))
    if policy.execution is not None:
        fixed = FixedCost(universe, policy, scale, upper)
        if fixed.active:
            terms.append(fixed)
    terms += [Carry(universe, hedge_idx), FailureLoss(universe, obj.failure_aversion)]
    terms += [Penalty(comp, universe) for comp in compiled if comp.constraint.penalty_weight() > 0]
    if impact is not None:
        terms.append(CurveIncome(impact, universe.n))
    return terms
