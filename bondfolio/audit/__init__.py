"""Consumers of decision records: replay, diff, explain, frontier, stress and the HTML report.

They read records through :class:`bondfolio.solver.record.DecisionRecord` and re-solve through the
solver; nothing in :mod:`bondfolio.solver` imports this package.
"""

from bondfolio.audit.diff import DiffReport, diff
from bondfolio.audit.explain import Explanation, explain
from bondfolio.audit.frontier import Frontier, frontier
from bondfolio.audit.replay import ReplayResult, replay
from bondfolio.audit.stress import StressReport, stress

__all__ = ["DiffReport", "Explanation", "Frontier", "ReplayResult", "StressReport", "diff", "explain", "frontier",
           "replay", "stress"]
