"""Builds and solves the convex program; the Decision and its audit record."""

from bondfolio.solver.api import Inputs, allocate, load_inputs, validate
from bondfolio.solver.decision import Decision
from bondfolio.solver.program import OBJECTIVE_SCALE, Program, Solution
from bondfolio.solver.stress import StressReport, stress

__all__ = ["OBJECTIVE_SCALE", "Decision", "Inputs", "Program", "Solution", "StressReport", "allocate", "load_inputs",
           "stress", "validate"]
