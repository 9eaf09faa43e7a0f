"""bondfolio: allocation engine for on-chain fixed-income portfolios.

>>> import bondfolio
>>> decision = bondfolio.allocate("examples/treasury/snapshot.json", "examples/treasury/policy.toml")
>>> decision.weights  # doctest: +SKIP
"""

from bondfolio import constraints as constraints  # registers every constraint kind
from bondfolio._version import __version__
from bondfolio.audit import diff, explain, frontier, replay, stress
from bondfolio.errors import (
    BondfolioError,
    CheckFailedError,
    InfeasibleError,
    InputError,
    SolverError,
    UnboundedError,
)
from bondfolio.inputs import Holdings, Opportunity, Policy, Snapshot, load_holdings, load_policy, load_snapshot
from bondfolio.inputs.history import estimate_risk
from bondfolio.solver import Decision, Program, allocate, load_decision, validate

__all__ = [
    "BondfolioError",
    "CheckFailedError",
    "Decision",
    "Holdings",
    "InfeasibleError",
    "InputError",
    "Opportunity",
    "Policy",
    "Program",
    "Snapshot",
    "SolverError",
    "UnboundedError",
    "__version__",
    "allocate",
    "diff",
    "estimate_risk",
    "explain",
    "frontier",
    "load_decision",
    "load_holdings",
    "load_policy",
    "load_snapshot",
    "replay",
    "stress",
    "validate",
]
