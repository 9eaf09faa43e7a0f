"""The Python API: ``allocate`` and ``validate``, taking models or file paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bondfolio.errors import InfeasibleError, SolverError
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.policy import Policy, load_policy
from bondfolio.inputs.snapshot import Snapshot, load_snapshot
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective import trading_costs
from bondfolio.solver.program import Program, effective_constraints

if TYPE_CHECKING:
    from bondfolio.solver.decision import Decision

__all__ = ["Inputs", "allocate", "load_inputs", "validate"]

SnapshotLike = Snapshot | str | Path | dict[str, Any]
PolicyLike = Policy | str | Path | dict[str, Any]
HoldingsLike = Holdings | str | Path | dict[str, Any]


class Inputs:
    """Validated snapshot, policy, holdings and the universe they make."""

    def __init__(self, snapshot: Snapshot, policy: Policy, holdings: Holdings | None) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self.holdings = holdings
        self.universe = Universe.build(snapshot, holdings, policy.nav)


def load_inputs(snapshot: SnapshotLike, policy: PolicyLike, holdings: HoldingsLike | None = None) -> Inputs:
    """Load and validate each input, then cross-check them (ids, NAV)."""
    snap = load_snapshot(snapshot)
    pol = load_policy(policy)
    hold = None if holdings is None else load_holdings(holdings)
    return Inputs(snap, pol, hold)


def validate(snapshot: SnapshotLike, policy: PolicyLike | None = None,
             holdings: HoldingsLike | None = None) -> dict[str, Any]:
    """Validate inputs without solving: every field, and every reference a constraint makes.

    Returns a summary (counts and the rows each constraint would create).

    Raises
    ------
    InputError
        Naming the field, the id and what to fix.
    """
    snap = load_snapshot(snapshot)
    summary: dict[str, Any] = {"opportunities": len(snap.opportunities),
                               "risk": "factors" if snap.risk.factors is not None else "covariance"}
    hold = None if holdings is None else load_holdings(holdings)
    if hold is not None and policy is None:
        Universe.build(snap, hold, None)
    if policy is not None:
        pol = load_policy(policy)
        u = Universe.build(snap, hold, pol.nav)
        trading_costs(u, pol)
        rows = {}
        for c in effective_constraints(pol, snap.opportunities):
            rows[c.label] = len(c.resolve_checked(u).labels)
        summary.update({"policy": pol.name, "nav": u.nav, "constraints": rows})
    return summary


def allocate(snapshot: SnapshotLike, policy: PolicyLike, holdings: HoldingsLike | None = None, *,
             embed_inputs: bool = True, diagnose_infeasible: bool = True, dpp: bool = False) -> Decision:
    """Solve one allocation problem and return a verified :class:`Decision`.

    Parameters
    ----------
    snapshot
        The opportunity set: a :class:`Snapshot`, a JSON file path, JSON text or a mapping.
    policy
        The policy: a :class:`Policy`, a TOML or JSON file path, JSON text or a mapping.
    holdings
        Current holdings (optional): a :class:`Holdings`, a JSON file path, JSON text or a mapping.
    embed_inputs
        Embed the canonical inputs in the decision record (default), so it replays on its own;
        otherwise the record names only their sha256.
    diagnose_infeasible
        On an infeasible policy, run the elastic diagnosis (:mod:`bondfolio.solver.diagnose`) and
        attach it to the error (default).
    dpp
        Compile with DPP (as a program re-solved with new Parameters is, e.g. in a backtest) instead of
        the faster one-off compilation; recorded in the record's solver options, and replay follows it.

    Raises
    ------
    InputError
        Invalid input (exit code 2 on the command line).
    InfeasibleError
        The constraints cannot hold together (exit code 3). Its ``diagnosis`` (a
        :class:`~bondfolio.solver.diagnose.Diagnosis`) names an irreducible conflicting set and the
        smallest relaxation that restores feasibility; the message includes it.
    SolverError
        No solver produced a verified allocation (exit code 4).
    """
    from bondfolio.solver.decision import Decision  # the record and its tables: not needed to validate
    from bondfolio.solver.diagnose import diagnose
    from bondfolio.solver.solve import solver_order

    inputs = load_inputs(snapshot, policy, holdings)
    program = Program(inputs.universe, inputs.policy)
    try:
        solution = program.solve(reuse=dpp)
    except InfeasibleError as exc:
        if not diagnose_infeasible:
            raise
        try:
            order, _ = solver_order(program, dpp)
            diagnosis = diagnose(inputs.universe, program.constraints, inputs.policy.name, order)
        except SolverError as failed:  # the infeasibility stands; only its explanation is missing
            raise InfeasibleError(f"{exc}\n(no diagnosis: {failed})", inputs.policy.name, None) from None
        raise InfeasibleError(f"{exc}\n{diagnosis.text()}", inputs.policy.name, diagnosis) from None
    return Decision(inputs.snapshot, inputs.policy, inputs.holdings, program, solution, embed_inputs=embed_inputs)
