"""The engine: builds and solves the program, verifies the answer, and makes the Decision and its record.

Names load on first use, so reading a record (:mod:`bondfolio.solver.record`) does not import cvxpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Inputs": "bondfolio.solver.api", "allocate": "bondfolio.solver.api", "load_inputs": "bondfolio.solver.api",
    "validate": "bondfolio.solver.api", "Decision": "bondfolio.solver.decision",
    "Diagnosis": "bondfolio.solver.diagnose", "OBJECTIVE_SCALE": "bondfolio.solver.solve",
    "Program": "bondfolio.solver.program", "Solution": "bondfolio.solver.solve",
    "DecisionRecord": "bondfolio.solver.record", "load_decision": "bondfolio.solver.record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bondfolio.solver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
