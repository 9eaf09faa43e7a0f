"""Builds and solves the convex program; the Decision and its audit record."""

from bondfolio.solver.api import Inputs, allocate, load_inputs, validate
from bondfolio.solver.decision import Decision
from bondfolio.solver.diagnose import Diagnosis
from bondfolio.solver.explain import Explanation, explain
from bondfolio.solver.frontier import Frontier, frontier
from bondfolio.solver.program import OBJECTIVE_SCALE, Program, Solution
from bondfolio.solver.record import DecisionRecord, load_decision
from bondfolio.solver.replay import DiffReport, ReplayResult, diff, replay
from bondfolio.solver.stress import StressReport, stress

__all__ = ["OBJECTIVE_SCALE", "Decision", "DecisionRecord", "Diagnosis", "DiffReport", "Explanation", "Frontier",
           "Inputs", "Program", "ReplayResult", "Solution", "StressReport", "allocate", "diff", "explain", "frontier",
           "load_decision", "load_inputs", "replay", "stress", "validate"]
