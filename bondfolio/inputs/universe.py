"""The numeric view of one allocation problem's inputs: arrays by opportunity, NAV, current weights.

:class:`Universe` is built once from a snapshot, optional holdings and the NAV. Constraints read it to
resolve selections and bounds; the solver reads it to build the program; the independent check
reads it to evaluate a finished allocation. Everything here is plain numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter

import numpy as np

from bondfolio.errors import InputError
from bondfolio.inputs import groups as vocabulary
from bondfolio.inputs.failure import FailureEvents, failure_events
from bondfolio.inputs.groups import ATTRIBUTES
from bondfolio.inputs.holdings import Holdings
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.snapshot import Opportunity, Snapshot

__all__ = ["NUMERIC_FIELDS", "Universe"]

#: Numeric opportunity fields usable as exposures (besides the keys of ``exposures``).
NUMERIC_FIELDS: tuple[str, ...] = (
    "apy", "duration", "risk_score", "price", "withdrawal_delay_days", "tvl", "available_liquidity", "carry",
    "margin",
)


@dataclass(frozen=True, eq=False)
class Universe:
    """Arrays over the opportunities of a snapshot, in snapshot order, plus NAV and holdings.

    Weights are fractions of ``nav``. ``w0`` are current weights (zeros without holdings) and
    ``cash0`` current idle cash as a fraction of NAV.
    """

    snapshot: Snapshot
    nav: float
    """Net asset value being allocated, base currency."""
    w0: np.ndarray
    """Current weights by opportunity (fractions of ``nav``)."""
    cash0: float
    """Current idle cash, fraction of ``nav``."""
    has_holdings: bool
    holdings_nav: float | None = None
    """Value of the holdings (positions plus cash) in base currency, when holdings were given."""
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, snapshot: Snapshot, holdings: Holdings | None = None, nav: float | None = None) -> Universe:
        """Resolve NAV and current weights.

        ``nav`` wins when given; otherwise the holdings' value is the NAV. Holdings naming an id the
        snapshot lacks are an error: a position is never silently dropped.
        """
        opps = snapshot.opportunities
        index = {o.id: i for i, o in enumerate(opps)}
        n = len(opps)
        amounts = np.zeros(n)
        cash_amount = 0.0
        held_value: float | None = None
        if holdings is not None:
            positions = holdings.positions
            at = np.array([index.get(key, -1) for key in positions], dtype=np.intp)
            given = np.fromiter(positions.values(), dtype=float, count=len(positions))
            known = at >= 0
            held = at[known]
            hedge = _hedge_mask(opps)
            values = given[known]
            if holdings.unit == "tokens":
                values = values * np.fromiter((opps[i].price for i in held.tolist()), dtype=float, count=held.size)
            short = np.zeros(at.size, dtype=bool)
            short[known] = (values < 0) & ~hedge[held]
            if not known.all() or short.any():
                problems = []
                for key, unknown, negative in zip(positions, ~known, short, strict=True):
                    if unknown:
                        problems.append(f"holding '{key}' is not an opportunity of the snapshot: add it to the "
                                        "snapshot (to keep or sell it) rather than dropping it")
                    elif negative:
                        problems.append(f"holding '{key}' is {positions[key]:g} {holdings.unit}: only hedges may "
                                        "be negative")
                InputError.collect(problems, "holdings")
            amounts[held] = values
            cash_amount = holdings.cash
            held_value = float(np.sum(amounts[~hedge])) + cash_amount
        if nav is None:
            if held_value is None:
                raise InputError(
                    "no NAV: the policy sets no 'nav' and no holdings were given: set nav in the policy or "
                    "pass holdings"
                )
            if held_value <= 0:
                raise InputError(f"holdings are worth {held_value:g}: set a positive 'nav' in the policy")
            nav = held_value
        w0 = amounts / nav
        w0.setflags(write=False)
        return cls(snapshot, float(nav), w0, cash_amount / nav, holdings is not None, held_value, index)

    # ------------------------------------------------------------------ basic views
    @property
    def n(self) -> int:
        """Number of opportunities."""
        return len(self.snapshot.opportunities)

    @cached_property
    def ids(self) -> list[str]:
        """Opportunity ids in order."""
        return [o.id for o in self.snapshot.opportunities]

    def ids_at(self, idx: np.ndarray) -> list[str]:
        """The ids of the opportunities at indices ``idx``, in that order."""
        return list(map(self.ids.__getitem__, np.asarray(idx, dtype=np.intp).tolist()))

    def index_of(self, key: str) -> int | None:
        """Position of opportunity ``key``, or ``None``."""
        return self._index.get(key)

    @cached_property
    def hedge(self) -> np.ndarray:
        """Boolean mask of hedges (signed notional, outside the budget)."""
        mask = _hedge_mask(self.snapshot.opportunities)
        mask.setflags(write=False)
        return mask

    def attribute(self, name: str) -> list[str]:
        """Values of text attribute ``name`` (one of :data:`~bondfolio.inputs.groups.ATTRIBUTES`) by
        opportunity."""
        if name not in ATTRIBUTES:
            raise KeyError(name)
        cache = self._attributes
        if name not in cache:
            cache[name] = vocabulary.attribute_values(self.snapshot.opportunities, name)
        return cache[name]

    @cached_property
    def _attributes(self) -> dict[str, list[str]]:
        return {}

    @cached_property
    def tag_keys(self) -> set[str]:
        """Keys of ``key:value`` tags present in the snapshot."""
        return vocabulary.tag_keys(self.snapshot.opportunities)

    @cached_property
    def all_tags(self) -> set[str]:
        """Every tag label present."""
        return {t for o in self.snapshot.opportunities for t in o.tags}

    def groups(self, by: str) -> dict[str, np.ndarray]:
        """Members of each group when grouping by ``by`` (see :func:`bondfolio.inputs.groups.groups`)."""
        if by in ATTRIBUTES:  # from the attribute's values as cached here
            return vocabulary.group_indices(self.attribute(by))
        return vocabulary.groups(self.snapshot.opportunities, by)

    def members(self, group: str, deposits_only: bool = True) -> np.ndarray | None:
        """Mask of ``key:value`` group ``group`` (see :func:`bondfolio.inputs.groups.members`)."""
        return vocabulary.members(self.snapshot.opportunities, group, deposits_only)

    def groupable(self) -> list[str]:
        """Everything :meth:`groups` accepts."""
        return vocabulary.group_keys(self.snapshot.opportunities)

    # ------------------------------------------------------------------ numbers
    def numeric(self, name: str) -> np.ndarray:
        """A numeric attribute by opportunity: a field of :data:`NUMERIC_FIELDS` or an ``exposures`` key.

        Missing optional values (``tvl``, ``available_liquidity``) are NaN; a missing exposure is 0.
        """
        cache = self._numeric_cache
        if name in cache:
            return cache[name]
        if name in NUMERIC_FIELDS:
            return self._fields[name]
        if name not in self.exposure_names:
            raise KeyError(name)
        array = np.array([o.exposures.get(name, 0.0) for o in self.snapshot.opportunities])
        array.setflags(write=False)
        cache[name] = array
        return array

    @cached_property
    def _fields(self) -> dict[str, np.ndarray]:
        """Every field of :data:`NUMERIC_FIELDS` by opportunity (``None`` as NaN), read in one pass that visits
        each opportunity once: a pass per field costs several times more at 10,000 opportunities, the models
        being cold in the processor's caches after validation."""
        rows = list(map(attrgetter(*NUMERIC_FIELDS), self.snapshot.opportunities))
        table = np.array(rows, dtype=float).reshape(-1, len(NUMERIC_FIELDS)).T.copy()  # numpy reads None as NaN
        table.setflags(write=False)
        return dict(zip(NUMERIC_FIELDS, table, strict=True))

    def numeric_names(self) -> list[str]:
        """Everything :meth:`numeric` accepts."""
        return [*NUMERIC_FIELDS, *sorted(self.exposure_names)]

    @cached_property
    def exposure_names(self) -> set[str]:
        """Keys of ``exposures`` present in the snapshot."""
        return {k for o in self.snapshot.opportunities for k in o.exposures}

    @cached_property
    def _numeric_cache(self) -> dict[str, np.ndarray]:
        return {}

    @cached_property
    def apy(self) -> np.ndarray:
        """Expected APY by opportunity (decimal)."""
        return self.numeric("apy")

    # ------------------------------------------------------------------ failure risk
    @cached_property
    def failure(self) -> FailureEvents | None:
        """The snapshot's failure sources resolved to arrays, or ``None`` without a failure model."""
        model = self.snapshot.failure
        return None if model is None else failure_events(self.snapshot.opportunities, model)

    @cached_property
    def expected_loss_rate(self) -> np.ndarray:
        """Expected annual failure loss per unit of each position (zeros without a failure model)."""
        events = self.failure
        out = np.zeros(self.n) if events is None else events.expected_loss_rate
        out.setflags(write=False)
        return out

    # ------------------------------------------------------------------ risk
    @cached_property
    def risk_factor(self) -> tuple[np.ndarray, np.ndarray]:
        """``(R, s)`` with ``Sigma = R R' + diag(s**2)``; never forms an n x n matrix from factors.

        Factor form: ``R = B L`` with ``F = L L'`` (eigen-factorization, tiny negative round-off
        eigenvalues clipped to 0), ``s = sqrt(d)``. Dense form: ``R = V sqrt(lambda)`` over the
        non-zero eigenvalues, ``s = 0``.
        """
        risk = self.snapshot.risk
        if risk.factors is not None:
            b = risk.factors.loadings
            root = _psd_root(risk.factors.factor_covariance)
            return b @ root, np.sqrt(risk.factors.specific_variance)
        assert risk.covariance is not None
        return _psd_root(risk.covariance), np.zeros(self.n)

    def variance(self, w: np.ndarray) -> float:
        """``w' Sigma w`` (from the factors, never forming Sigma, when the risk is in factor form)."""
        return float(w @ self.marginal_risk(w))

    def marginal_risk(self, w: np.ndarray) -> np.ndarray:
        """``Sigma w``, by opportunity."""
        risk = self.snapshot.risk
        if risk.covariance is not None:
            return np.asarray(risk.covariance @ w)
        assert risk.factors is not None
        f = risk.factors
        return np.asarray(f.loadings @ (f.factor_covariance @ (f.loadings.T @ w)) + f.specific_variance * w)


def _hedge_mask(opportunities: Sequence[Opportunity]) -> np.ndarray:
    """Boolean mask of the hedges among ``opportunities``."""
    hedge = Kind.hedge  # (an enum member looked up once: each lookup goes through the enum's metaclass)
    return np.fromiter((o.kind is hedge for o in opportunities), dtype=bool, count=len(opportunities))


def _psd_root(mat: np.ndarray) -> np.ndarray:
    """``R`` with ``R R' = mat`` for a validated PSD ``mat``, dropping zero eigen-directions."""
    if mat.size == 0:
        return np.zeros((mat.shape[0], 0))
    eig, vec = np.linalg.eigh((mat + mat.T) / 2)
    keep = eig > max(1.0, float(eig[-1])) * 1e-14
    return vec[:, keep] * np.sqrt(eig[keep])
