"""The policy: objective, solver settings and the list of constraints, read from TOML.

Constraint models live in :mod:`bondfolio.constraints` (one family per file) and register their
``kind`` here when that package is imported (importing :mod:`bondfolio` does it), so this module
never imports them and a new constraint family is one new file.

Objective convention (kept exactly, so results can be checked against other optimizers)::

    maximize  sum_i (apy_i - phi el_i) w_i + cash_apy * c - (gamma / 2) w' Sigma w
              - sum_i cost_i |w_i - w0_i| - sum_h carry_h |w_h| - sum_k rho_k f_k(w)

with ``w`` weights as fractions of NAV, ``c`` idle cash, ``gamma`` the risk aversion, ``cost_i``
the one-off trading cost as a decimal of the amount traded (``trading_cost_bp / 1e4``), charged
against one year of yield, ``el_i`` the expected annual failure loss rate (snapshot failure model)
weighted by ``phi = failure_aversion``, ``carry_h`` the hedges' carry, and ``rho_k f_k`` the
penalties of soft constraints (e.g. ``cvar`` with ``penalty``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, SerializeAsAny, field_validator

from bondfolio.inputs.base import Amount, Fraction, OmitUnset, StrictModel, parse_tagged, read_source, validate_document

__all__ = [
    "DEFAULT_SOLVERS",
    "SCENARIO_LP_SOLVERS",
    "ConstraintSpec",
    "ExecutionSettings",
    "Objective",
    "Policy",
    "RebalanceSettings",
    "SolverSettings",
    "constraint_kinds",
    "load_policy",
]

#: Solvers tried in order when the policy does not say and the program is not a scenario LP: Clarabel
#: (interior point, conic, accurate), then SCS (first-order; its answers are accepted only after the
#: independent check passes). The choice by shape is :func:`bondfolio.solver.solve.solver_order`.
DEFAULT_SOLVERS: tuple[str, ...] = ("CLARABEL", "SCS")
#: Solvers tried in order for a linear program with a scenario block (a ``cvar`` limit and no quadratic
#: or conic term) when the policy does not say: HiGHS (simplex, 10-20x faster than an interior point on
#: these dense LPs), then Clarabel and SCS.
SCENARIO_LP_SOLVERS: tuple[str, ...] = ("HIGHS", "CLARABEL", "SCS")


class ConstraintSpec(StrictModel):
    """Data part of a constraint: its ``kind`` and optional ``name``. Subclasses add parameters.

    Subclasses declared with a literal ``kind`` default register themselves, so a policy file can
    name them.
    """

    kind: str
    """Constraint family, e.g. ``group_cap``."""
    name: str | None = None
    """Label used in the decision record; defaults to a description built from the parameters."""

    _registry: ClassVar[dict[str, type[ConstraintSpec]]] = {}
    policy_kind: ClassVar[bool] = True
    """False for constraints the solver adds itself (not allowed in a policy file)."""
    label_excludes: ClassVar[frozenset[str]] = frozenset()
    """Parameters that say how a constraint is solved, not what it is: never part of its label."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("kind")
        kind = field.default if field is not None else None
        if isinstance(kind, str) and cls.__dict__.get("policy_kind", True):
            existing = ConstraintSpec._registry.get(kind)
            if existing is not None and existing.__qualname__ != cls.__qualname__:
                raise TypeError(f"constraint kind '{kind}' is registered twice ({existing.__name__}, {cls.__name__})")
            ConstraintSpec._registry[kind] = cls

    @property
    def label(self) -> str:
        """``name`` if given, else ``kind{param=value, ...}`` from the scalar parameters that differ
        from their defaults (selections and per-key limits are left out: give a ``name`` to tell
        apart two constraints of one kind that differ only there)."""
        if self.name:
            return self.name
        dumped = self.model_dump(exclude={"kind", "name", *self.label_excludes}, exclude_defaults=True, mode="json")
        parts = [f"{key}={value}" for key, value in dumped.items() if isinstance(value, str | int | float | bool)]
        return f"{self.kind}{{{', '.join(parts)}}}" if parts else self.kind


_kinds_loader: list[Callable[[], object]] = []


def set_kinds_loader(loader: Callable[[], object]) -> None:
    """How to load the constraint families on first use (the package root sets it: this module never
    imports them, and they register themselves when loaded)."""
    _kinds_loader[:] = [loader]


def constraint_kinds() -> dict[str, type[ConstraintSpec]]:
    """Registered constraint kinds (loading the families on first use)."""
    if _kinds_loader:
        loader = _kinds_loader.pop()
        loader()
    return dict(sorted(ConstraintSpec._registry.items()))


def _parse_constraints(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError("constraints must be a list of tables ([[constraints]] in TOML)")
    ready = [item for item in value if isinstance(item, ConstraintSpec)]
    if len(ready) == len(value):
        return tuple(ready)
    parsed, problems = parse_tagged(value, constraint_kinds(), "kind", "constraint", "name",
                                    ", which is not a constraint kind")
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(parsed)


class Objective(OmitUnset, StrictModel):
    """Objective parameters. See the module docstring for the exact formula."""

    risk_aversion: float = Field(default=0.0, ge=0.0)
    """gamma in ``- (gamma/2) w' Sigma w``; 0 maximizes yield alone."""
    cash_apy: float = Field(default=0.0, ge=-1.0, le=10.0)
    """Yield of idle cash, decimal."""
    trading_cost_bp: float = Field(default=0.0, ge=0.0, le=10_000.0)
    """One-off cost of trading, in basis points of the amount traded, for every opportunity."""
    trading_cost_bp_by_id: dict[str, float] = Field(default_factory=dict)
    """Per-opportunity overrides of ``trading_cost_bp``."""
    failure_aversion: float = Field(default=1.0, ge=0.0)
    """Weight of the expected annual failure loss (from the snapshot's failure model) in the
    objective: 1 counts it as the cost it is on average, more is more averse, 0 ignores it."""
    rate_impact: bool = True
    """Model how our own deposits move the yield of markets whose ``rate_curve`` is known (replacing
    ``apy_i w_i`` by the exact curve's income, approximated by a concave envelope)."""
    rate_impact_tolerance_bp: float = Field(default=0.01, gt=0.0, le=100.0)
    """Accuracy of the envelope, in basis points of portfolio APY, where incomes are concave."""
    cost_horizon_days: float | None = Field(default=None, gt=0.0, le=3650.0)
    """Charge one-off costs (trading cost, slippage, fixed costs) against this many days of yield
    instead of a year: they count ``365 / cost_horizon_days`` times in the annual objective. The
    rebalance gate sets it to ``[rebalance] horizon_days``."""

    omit_when_none = ("cost_horizon_days",)

    @field_validator("trading_cost_bp_by_id")
    @classmethod
    def _costs(cls, value: dict[str, float]) -> dict[str, float]:
        for key, bp in value.items():
            if not 0.0 <= bp <= 10_000.0:
                raise ValueError(f"trading cost of '{key}' is {bp} bp: it must be within [0, 10000]")
        return value


class SolverSettings(OmitUnset, StrictModel):
    """Which solvers to try, in order, and how tightly."""

    omit_when_none = ("order",)

    order: tuple[str, ...] | None = None
    """Solvers tried in order until one returns a verified allocation (cvxpy names). Unset: chosen by
    the program's shape (:data:`SCENARIO_LP_SOLVERS` for a scenario LP, else :data:`DEFAULT_SOLVERS`);
    the decision records the order used and where it came from."""
    check_tolerance: float = Field(default=1e-7, gt=0.0, le=1e-3)
    """Largest violation the independent check accepts, in the constraint's own units (weights are
    fractions of NAV, so 1e-7 is 0.001 bp of NAV)."""
    binding_tolerance: float = Field(default=1e-6, gt=0.0, le=1e-2)
    """A constraint row whose slack is at most this is reported as binding."""

    @field_validator("order")
    @classmethod
    def _order(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("solver order is empty: name at least one solver, e.g. ['CLARABEL']")
        upper = tuple(v.upper() for v in value)
        if len(set(upper)) != len(upper):
            raise ValueError(f"solver order {list(value)} names a solver twice")
        return upper


class ExecutionSettings(StrictModel):
    """``[execution]``: how a decision becomes transactions (see :mod:`bondfolio.execution`)."""

    min_trade: Amount = 0.0
    """Trades smaller than this (base currency) are dropped from the plan: dust costs more gas than it moves."""
    max_legs: int | None = Field(default=None, ge=1)
    """Most protocol actions (withdrawals and deposits) per plan; the smallest trades beyond are dropped."""
    liquidity_margin: Fraction = 0.0
    """Share of a market's free liquidity a withdrawal leaves untouched (other withdrawals may land first)."""
    max_slippage_bp: float = Field(default=50.0, ge=0.0, le=10_000.0)
    """Worst acceptable price of a swap or bridge intent, basis points below par."""
    gas_per_leg: Amount | None = None
    """Gas cost of one leg in base currency, for snapshots without chain data (no base fee)."""
    native_price: dict[str, float] = Field(default_factory=dict)
    """Base currency per native token by chain, where the snapshot does not record it."""
    bridge_cost_bp: float = Field(default=5.0, ge=0.0, le=10_000.0)
    """Cost of moving money between chains, basis points of the amount bridged (backtests)."""


class RebalanceSettings(StrictModel):
    """``[rebalance]``: when a move pays (see ``bondfolio rebalance-check``)."""

    horizon_days: float = Field(default=7.0, gt=0.0, le=3650.0)
    """Days over which the gain of a move is accrued against its one-off costs (gas, slippage,
    proportional costs); the gate's decision charges those costs against this horizon's yield."""
    min_net_gain: float = 0.0
    """Act only when the gain over the horizon less the costs reaches this (base currency)."""
    min_net_gain_bp: float = 0.0
    """The same in basis points of NAV; the larger of the two applies."""
    depeg_threshold: float = Field(default=0.02, gt=0.0, lt=1.0)
    """A held market whose asset price is below ``1 - depeg_threshold`` (stablecoins: base currency per
    token) must be left."""
    max_utilization: float = Field(default=0.98, gt=0.0, le=1.0)
    """A held market more utilized than this (withdrawals at risk) must be left."""
    min_interval_hours: float = Field(default=0.0, ge=0.0)
    """Hold (unless a must-act trigger fires) when the last decision (``--last``) is more recent."""
    max_turnover: float | None = Field(default=None, gt=0.0)
    """Largest ``sum |w - w0|`` of one move (fraction of NAV)."""


ConstraintList = Annotated[tuple[SerializeAsAny[ConstraintSpec], ...], BeforeValidator(_parse_constraints)]


class Policy(OmitUnset, StrictModel):
    """An investment policy: NAV, objective, solver settings and constraints."""

    name: str = Field(min_length=1)
    """Policy name, used in messages and records."""
    nav: float | None = Field(default=None, gt=0.0)
    """Net asset value to allocate, in base currency; taken from the holdings when omitted."""
    objective: Objective = Field(default_factory=Objective)
    solver: SolverSettings = Field(default_factory=SolverSettings)
    constraints: ConstraintList = ()
    """The constraints, each a table with a ``kind`` and its parameters."""
    execution: ExecutionSettings | None = None
    """``[execution]``: plan settings (minimum trade, legs, liquidity margin, intents' worst price)."""
    rebalance: RebalanceSettings | None = None
    """``[rebalance]``: the gate's horizon, thresholds and triggers."""

    omit_when_none = ("execution", "rebalance")


def load_policy(source: Policy | str | Path | dict[str, Any]) -> Policy:
    """Load and validate a policy from a model, a TOML (or JSON) file path, JSON text or a mapping."""
    if isinstance(source, Policy):
        return source
    raw, label = read_source(source, "policy")
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label = f"{label} ('{raw['name']}')" if label != "policy" else f"policy '{raw['name']}'"
    return validate_document(Policy, raw, label)
