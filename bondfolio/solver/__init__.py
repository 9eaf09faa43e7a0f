"""The engine: builds and solves the program, verifies the answer, and makes the Decision and its record."""

from bondfolio.solver.api import Inputs, allocate, load_inputs, validate
from bondfolio.solver.decision import Decision
from bondfolio.solver.diagnose import Diagnosis
from bondfolio.solver.program import OBJECTIVE_SCALE, Program, Solution
from bondfolio.solver.record import DecisionRecord, load_decision

__all__ = ["OBJECTIVE_SCALE", "Decision", "DecisionRecord", "Diagnosis", "Inputs", "Program", "Solution", "allocate",
           "load_decision", "load_inputs", "validate"]
