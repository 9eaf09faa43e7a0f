"""bondfolio: allocation engine for on-chain fixed-income portfolios.

>>> import bondfolio
>>> decision = bondfolio.allocate("examples/treasury/snapshot.json", "examples/treasury/policy.toml")
>>> decision.weights  # doctest: +SKIP

The public names load on first use (PEP 562), so ``import bondfolio`` and ``bondfolio --help`` do not
import the solver stack (cvxpy, scipy); the constraint families register themselves the first time a
policy is parsed (:func:`bondfolio.inputs.policy.constraint_kinds` calls the loader set here).
"""

from __future__ import annotations

import importlib
from typing import Any

from bondfolio._version import __version__
from bondfolio.errors import (
    BondfolioError,
    CheckFailedError,
    InfeasibleError,
    InputError,
    SolverError,
    UnboundedError,
)
from bondfolio.inputs import policy as _policy

# the constraint families are plug-ins of the policy model: loaded when a policy first needs them
_policy.set_kinds_loader(lambda: importlib.import_module("bondfolio.constraints"))

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "constraints": "bondfolio.constraints",
    "diff": "bondfolio.audit.diff", "explain": "bondfolio.audit.explain", "frontier": "bondfolio.audit.frontier",
    "replay": "bondfolio.audit.replay", "stress": "bondfolio.audit.stress",
    "Holdings": "bondfolio.inputs.holdings", "load_holdings": "bondfolio.inputs.holdings",
    "Opportunity": "bondfolio.inputs.snapshot", "Snapshot": "bondfolio.inputs.snapshot",
    "load_snapshot": "bondfolio.inputs.snapshot", "Policy": "bondfolio.inputs.policy",
    "load_policy": "bondfolio.inputs.policy", "estimate_risk": "bondfolio.inputs.history",
    "Decision": "bondfolio.solver.decision", "Program": "bondfolio.solver.program", "allocate": "bondfolio.solver.api",
    "validate": "bondfolio.solver.api", "load_decision": "bondfolio.solver.record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bondfolio' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "constraints" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
