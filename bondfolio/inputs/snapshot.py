"""The opportunity set: what can be held, what it yields, and how it co-moves.

A :class:`Snapshot` is one JSON file. Its ``opportunities`` list fixes the order of every vector and
matrix in ``risk``. Amounts are in ``base_currency``; yields are decimals (0.05 = 5 %); durations are
in years.
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from bondfolio.inputs.base import (
    Amount,
    Apy,
    Matrix,
    OmitUnset,
    StrictModel,
    Vector,
    Years,
    read_source,
    subject_in_list,
    validate_document,
    validate_json_source,
)
from bondfolio.inputs.execution import Execution
from bondfolio.inputs.failure import FailureModel, source_problems
from bondfolio.inputs.kinds import Kind, Tier

__all__ = [
    "PSD_TOLERANCE",
    "SNAPSHOT_SCHEMA",
    "AdaptiveCurve",
    "AmmCurve",
    "AsOf",
    "ChainBlock",
    "DilutionCurve",
    "FactorRisk",
    "Kind",
    "KinkedCurve",
    "Opportunity",
    "PendleCurve",
    "RiskModel",
    "Snapshot",
    "Tier",
    "load_snapshot",
]

SNAPSHOT_SCHEMA = "bondfolio.snapshot/1"

#: Relative tolerance for positive semi-definiteness: the most negative eigenvalue may be as low as
#: ``-PSD_TOLERANCE * max(1, largest eigenvalue)`` (round-off in estimated covariances), no lower.
PSD_TOLERANCE = 1e-10

#: Relative tolerance for symmetry: ``|S - S'| <= SYMMETRY_TOLERANCE * max|S|`` entrywise.
SYMMETRY_TOLERANCE = 1e-12


# enum members looked up once: each ``Kind.hedge`` goes through the enum's metaclass (0.4 us, run per opportunity)
_KIND_HEDGE, _TIER_HEDGE = Kind.hedge, Tier.hedge

#: Largest APR (decimal) a rate-curve parameter may take below its kink (1000 %): larger is percent.
MAX_RATE = 10.0


def _within_supply(curve: Any) -> Any:
    # a market cannot lend more than is supplied (utilization above 1 gives absurd APYs); 1e-9 of round-off
    if curve.total_borrow > curve.total_supply * (1 + 1e-9):
        raise ValueError(f"total_borrow {curve.total_borrow:.6g} exceeds total_supply {curve.total_supply:.6g}: a "
                         "market cannot lend more than is supplied (utilization above 100 %)")
    return curve


class KinkedCurve(StrictModel):
    """A two-slope rate curve (Aave v3, Compound v3). Rates are APRs as decimals.

    ``applies_to = "borrow"`` (Aave): the curve gives the borrow rate at utilization U and suppliers
    earn ``borrow_rate(U) * U * (1 - reserve_factor)``. ``applies_to = "supply"`` (Compound v3): the
    curve gives the supply rate directly.
    """

    model: Literal["kinked"] = "kinked"
    applies_to: Literal["borrow", "supply"]
    kink: float = Field(ge=0.0, le=1.0)
    """Utilization where the second slope starts (Aave's optimal usage ratio)."""
    base: float = Field(ge=0.0, le=MAX_RATE)
    slope_low: float = Field(ge=0.0, le=MAX_RATE)
    slope_high: float = Field(ge=0.0, le=1000.0)
    reserve_factor: float = Field(default=0.0, ge=0.0, le=1.0)
    total_supply: float = Field(ge=0.0)
    """Supplied, base currency."""
    total_borrow: float = Field(ge=0.0)
    """Borrowed, base currency."""

    @model_validator(mode="after")
    def _borrows(self) -> KinkedCurve:
        return _within_supply(self)


class AdaptiveCurve(StrictModel):
    """Morpho's adaptive-curve IRM at the read block. Rates are APRs as decimals."""

    model: Literal["adaptive"] = "adaptive"
    rate_at_target: float = Field(ge=0.0)
    target_utilization: float = Field(default=0.9, gt=0.0, lt=1.0)
    steepness: float = Field(default=4.0, gt=1.0)
    fee: float = Field(default=0.0, ge=0.0, le=1.0)
    total_supply: float = Field(ge=0.0)
    total_borrow: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _borrows(self) -> AdaptiveCurve:
        return _within_supply(self)


class DilutionCurve(StrictModel):
    """A vault whose yield (``apy * total_assets`` a year) is shared by all its assets: depositing x
    dilutes it to ``apy * total_assets / (total_assets + x)``."""

    model: Literal["dilution"] = "dilution"
    total_assets: float = Field(gt=0.0)
    """The vault's assets at the read block, base currency."""


class AmmCurve(StrictModel):
    """An AMM market (Pendle PT): a fixed yield, but trading moves the price against us.

    To first order the price moves linearly with the amount traded, so trading an amount ``a`` (base
    currency, either way) costs ``a ** 2 / (2 * depth)`` once: a convex slippage cost. ``depth`` is the
    amount that would move the price by 100 %, base currency.
    """

    model: Literal["amm"] = "amm"
    depth: float = Field(gt=0.0)


class PendleCurve(StrictModel):
    """A Pendle V2 market's AMM exactly as it trades (MarketMathCore), from its state at the read block.

    Integers as the market stores them: token amounts in base units of the PT (the SY and PT share
    decimals), rates and indexes scaled by 1e18. The exact model (:mod:`bondfolio.solver.pendle_amm`)
    prices a trade of ``d`` PT at the exchange rate ``ln(p / (1 - p)) / rateScalar + rateAnchor`` with
    ``p`` the pool's PT share after the trade, ``rateScalar = scalar_root * year / time to expiry``, the
    anchor set so the pool's rate is ``ln_implied_rate``, and the fee ``exp(ln_fee_rate_root * time to
    expiry / year)``. Supersedes the quadratic ``amm`` model for PT markets.
    """

    model: Literal["pendle"] = "pendle"
    total_pt: int = Field(gt=0)
    """PT in the pool, PT base units."""
    total_sy: int = Field(gt=0)
    """SY in the pool, SY base units."""
    py_index: int = Field(gt=0)
    """The YT's PY index (asset per SY, 1e18): ``max(SY.exchangeRate(), YT.pyIndexStored())``; the market
    converts SY to asset with it."""
    sy_exchange_rate: int = Field(gt=0)
    """``SY.exchangeRate()`` (asset per SY, 1e18): what depositing or redeeming the asset gets."""
    scalar_root: int = Field(gt=0)
    ln_fee_rate_root: int = Field(ge=0)
    reserve_fee_percent: int = Field(ge=0, le=100)
    ln_implied_rate: int = Field(gt=0)
    """``lastLnImpliedRate``: ln(1 + implied APY), 1e18."""
    expiry: int = Field(gt=0)
    """Unix seconds."""
    timestamp: int = Field(gt=0)
    """The read block's time, unix seconds (the curve depends on the time to expiry)."""
    decimals: int = Field(ge=0, le=36)
    """Decimals of the PT, SY and asset amounts."""

    @model_validator(mode="after")
    def _unexpired(self) -> PendleCurve:
        if self.expiry <= self.timestamp:
            raise ValueError(f"expiry {self.expiry} is not after the read time {self.timestamp}: an expired "
                             "market does not trade (its PT redeems 1:1)")
        return self


RateCurve = Annotated[KinkedCurve | AdaptiveCurve | DilutionCurve | AmmCurve | PendleCurve,
                      Field(discriminator="model")]


class Opportunity(OmitUnset, StrictModel):
    """One position the portfolio may hold."""

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/@+-]+$")
    """Unique identifier, stable across snapshots (letters, digits and ``_.:/@+-``)."""
    protocol: str = Field(min_length=1)
    """Protocol family, e.g. ``aave-v3``, ``compound-v3``, ``morpho-blue``, ``pendle``."""
    chain: str = Field(min_length=1)
    """Chain the position lives on, e.g. ``ethereum``, ``base``."""
    asset: str = Field(min_length=1)
    """Underlying asset symbol, e.g. ``USDC``."""
    kind: Kind
    """Rate behaviour: floating, fixed, vault or hedge."""
    apy: Apy
    """Expected annual yield as a decimal (0.05 = 5 %), net of protocol fees."""
    duration: Years = Field(ge=-100.0, le=100.0)
    """Years of rate sensitivity: ~0 floating, time to maturity for fixed, negative allowed for hedges."""
    maturity: datetime | None = None
    """Maturity date-time (timezone-aware), for fixed-term positions."""
    available_liquidity: Amount | None = None
    """Amount withdrawable from the market now, in base currency; ``None`` if not limited or unknown."""
    tvl: Amount | None = None
    """Total value locked in the market, in base currency."""
    risk_score: float = Field(ge=0.0, le=1.0)
    """Smart-contract and counterparty risk score: 0 safest, 1 riskiest."""
    tier: Tier = Tier.yield_
    """Book the position belongs to: core, yield (enhancement) or hedge."""
    price: float = Field(default=1.0, gt=0.0)
    """Base currency per token unit (1.0 for a stablecoin deposit; PT price below 1 before maturity)."""
    withdrawal_delay_days: float = Field(default=0.0, ge=0.0)
    """Days between a withdrawal request and the funds being available (0 = instant)."""
    market: str | None = None
    """Market identifier within the protocol (pool, comet, market id, vault address); defaults to ``id``."""
    tags: tuple[str, ...] = ()
    """Free labels. ``key:value`` labels (``oracle:chainlink``, ``issuer:circle``) form groups by key."""
    exposures: dict[str, float] = Field(default_factory=dict)
    """Named numeric exposures per unit of weight, e.g. ``{"delta:ETH": 0.5}``."""
    name: str | None = None
    """Human-readable name."""
    depositable: bool = True
    """False for a frozen or paused market: the position may shrink but never grow."""
    rate_curve: RateCurve | None = None
    """The market's interest-rate curve and totals at the read block, when a reader knows them."""
    carry: float = Field(default=0.0, ge=0.0, le=1.0)
    """Hedges only: annual cost of holding the instrument per unit of notional, either side (funding,
    option premium, bid-ask), decimal. Charged in the objective as ``carry * |w|``."""
    side: Literal["long", "short", "either"] = "either"
    """Hedges only: the sign the notional may take (``short``: ``w <= 0``). A hedge with a side has an
    exact gross notional ``|w|`` in the program (linear); an ``either`` hedge's is a convex bound, and
    if the solver posts more margin than it needs the independent check rejects the answer."""
    margin: float = Field(default=0.0, ge=0.0, le=1.0)
    """Hedges only: collateral posted per unit of notional, a fraction; it comes out of NAV (the
    budget), so margin for a hedge of 50 % of NAV at 10 % margin takes 5 % of NAV from deposits."""
    execution: Execution | None = None
    """What it takes to transact in the market (addresses, decimals, liquidity, headroom), as the
    reader found it; an opportunity without it gets no legs in an execution plan."""

    omit_when_none = ("execution",)

    @field_validator("maturity")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("maturity must carry a timezone, e.g. '2026-03-26T08:00:00Z'")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag or tag != tag.strip():
                raise ValueError(f"tag {tag!r} is empty or has surrounding spaces")
        if len(set(value)) != len(value):
            raise ValueError("tags repeat a label")
        return value

    @model_validator(mode="after")
    def _hedge_tier(self) -> Opportunity:
        hedge = self.kind is _KIND_HEDGE
        if hedge is not (self.tier is _TIER_HEDGE):
            raise ValueError(
                f"kind '{self.kind.value}' and tier '{self.tier.value}' disagree: hedges (kind 'hedge') "
                "belong to tier 'hedge' and only they do"
            )
        if not hedge and (self.duration < 0 or self.carry or self.margin or self.side != "either"):
            if self.duration < 0:
                raise ValueError(f"duration {self.duration} is negative: only hedges may have negative duration")
            raise ValueError("carry, margin and side are for hedges (kind 'hedge'): a deposit's cost belongs in its "
                             "apy, and deposits are long")
        return self

    @property
    def market_id(self) -> str:
        """``market`` when given, else ``id``."""
        return self.market or self.id


class FactorRisk(StrictModel):
    """Covariance in factor form: ``Sigma = B F B' + diag(d)``, never formed as an n x n matrix.

    Units: per-year variance of returns in decimal (a 1 % annual volatility is variance 1e-4).
    """

    names: tuple[str, ...] | None = None
    """Factor names, k of them (optional; used in reports)."""
    loadings: Matrix
    """B, n x k: exposure of each opportunity (rows in ``opportunities`` order) to each factor."""
    factor_covariance: Matrix
    """F, k x k, symmetric positive semi-definite."""
    specific_variance: Vector
    """d, n: idiosyncratic variance of each opportunity, non-negative."""


class RiskModel(StrictModel):
    """Either a dense ``covariance`` or ``factors``, exactly one."""

    covariance: Matrix | None = None
    """Dense n x n covariance, rows and columns in ``opportunities`` order (annual variance, decimals)."""
    factors: FactorRisk | None = None
    """Factor-form covariance."""

    @model_validator(mode="after")
    def _one_form(self) -> RiskModel:
        if (self.covariance is None) == (self.factors is None):
            raise ValueError("give exactly one of 'covariance' (dense) or 'factors' (factor form)")
        return self


class ChainBlock(OmitUnset, StrictModel):
    """The block a chain's state was read at."""

    chain_id: int | None = Field(default=None, ge=1)
    block_number: int | None = Field(default=None, ge=0)
    block_hash: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{64}$")
    block_timestamp: int | None = Field(default=None, ge=0)
    """Unix seconds of the block."""
    base_fee_wei: int | None = Field(default=None, ge=0)
    """The block's base fee per gas (EIP-1559), wei."""
    native_price: float | None = Field(default=None, gt=0.0)
    """Base currency per native token (ETH), for gas costs; from MARKETS.toml ``[chains.X] native_price``."""

    omit_when_none = ("block_timestamp", "base_fee_wei", "native_price")


class AsOf(StrictModel):
    """When the snapshot describes the world."""

    timestamp: datetime
    """Timezone-aware time of the snapshot."""
    chains: dict[str, ChainBlock] = Field(default_factory=dict)
    """Per chain name: chain id and the pinned block."""

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone, e.g. '2026-11-21T00:00:00Z'")
        return value


class Snapshot(StrictModel):
    """An opportunity set at one moment: positions, yields and their risk."""

    schema_: Literal["bondfolio.snapshot/1"] = Field(alias="schema", default="bondfolio.snapshot/1")
    """Format version."""
    description: str | None = None
    """Where the numbers come from (e.g. the reader and RPC, or 'illustrative')."""
    as_of: AsOf
    base_currency: str = Field(min_length=1)
    """Currency all amounts are in, e.g. ``USD``."""
    opportunities: tuple[Opportunity, ...]
    risk: RiskModel
    failure: FailureModel | None = None
    """Protocol and dependency failure probabilities and losses (see :mod:`bondfolio.inputs.failure`);
    without it no failure risk is modelled."""

    model_config = StrictModel.model_config | {"populate_by_name": True, "serialize_by_alias": True}

    @model_validator(mode="after")
    def _consistent(self) -> Snapshot:
        if not self.opportunities:
            raise ValueError("the snapshot has no opportunities: there is nothing to allocate to")
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, opp in enumerate(self.opportunities if self._opportunity_problems_likely() else ()):
            if opp.id in seen:
                problems.append(f"opportunity '{opp.id}' appears twice (#{seen[opp.id] + 1} and #{i + 1}): "
                                "ids must be unique")
            seen.setdefault(opp.id, i)
            if opp.maturity is not None and opp.maturity <= self.as_of.timestamp:
                problems.append(
                    f"opportunity '{opp.id}' matures {opp.maturity.isoformat()}, not after the snapshot time "
                    f"{self.as_of.timestamp.isoformat()}: drop it or refresh the snapshot"
                )
            if opp.chain not in self.as_of.chains and self.as_of.chains:
                problems.append(
                    f"opportunity '{opp.id}' is on chain '{opp.chain}', which as_of.chains does not list "
                    f"(it lists {sorted(self.as_of.chains)}): add the chain's block or fix the chain name"
                )
        problems.extend(_risk_problems(self.risk, [o.id for o in self.opportunities]))
        if self.failure is not None:
            problems.extend(source_problems(self.opportunities, self.failure))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _opportunity_problems_likely(self) -> bool:
        """Whether an id repeats, a maturity is not after the snapshot time or a chain is missing from
        ``as_of.chains``: three passes at C speed, so a clean snapshot skips :meth:`_consistent`'s walk,
        which names each such problem."""
        opps, chains, now = self.opportunities, self.as_of.chains, self.as_of.timestamp
        return (len(set(map(attrgetter("id"), opps))) != len(opps)
                or any(m is not None and m <= now for m in map(attrgetter("maturity"), opps))
                or (bool(chains) and not set(map(attrgetter("chain"), opps)) <= chains.keys()))

    @property
    def ids(self) -> list[str]:
        """Opportunity ids in snapshot order."""
        return [o.id for o in self.opportunities]


def _risk_problems(risk: RiskModel, ids: list[str]) -> list[str]:
    n = len(ids)
    problems: list[str] = []
    if risk.covariance is not None:
        cov = risk.covariance
        if cov.shape != (n, n):
            return [f"risk.covariance is {cov.shape[0]} x {cov.shape[1] if cov.ndim == 2 else 0}, "
                    f"but there are {n} opportunities: it must be {n} x {n}, in opportunities order"]
        problems.extend(_matrix_problems(cov, "risk.covariance", ids))
    elif risk.factors is not None:
        fac = risk.factors
        b, f, d = fac.loadings, fac.factor_covariance, fac.specific_variance
        k = b.shape[1] if b.ndim == 2 else 0
        if b.shape[0] != n:
            problems.append(f"risk.factors.loadings has {b.shape[0]} rows, but there are {n} opportunities")
        if f.shape != (k, k):
            problems.append(f"risk.factors.factor_covariance is {f.shape[0]} x {f.shape[1]}, but loadings have "
                            f"{k} factors: it must be {k} x {k}")
        if d.shape != (n,):
            problems.append(f"risk.factors.specific_variance has {d.shape[0]} entries, but there are {n} "
                            "opportunities")
        if fac.names is not None and len(fac.names) != k:
            problems.append(f"risk.factors.names has {len(fac.names)} names for {k} factors")
        if problems:
            return problems
        names = list(fac.names) if fac.names else [f"factor #{j + 1}" for j in range(k)]
        problems.extend(_matrix_problems(f, "risk.factors.factor_covariance", names))
        for i in np.flatnonzero(d < 0):
            problems.append(f"risk.factors.specific_variance of opportunity '{ids[i]}' is {d[i]:.6g}: "
                            "variances cannot be negative")
    return problems


#: Largest annual variance (decimal) an entry of a covariance may have: 1e4 is a 10,000 % volatility;
#: larger numbers are units gone wrong (percent squared, basis points), and break the eigen-solver.
MAX_VARIANCE = 1e4


def _matrix_problems(mat: np.ndarray, field: str, labels: list[str]) -> list[str]:
    if mat.size == 0:
        return []
    scale = float(np.max(np.abs(mat)))
    if scale > MAX_VARIANCE:
        i, j = np.unravel_index(int(np.argmax(np.abs(mat))), mat.shape)
        return [f"{field} entry ({labels[i]}, {labels[j]}) is {mat[i, j]:.6g}: annual variances (decimal) stay below "
                f"{MAX_VARIANCE:g} (a 10,000 % volatility); check the units (percent? basis points?)"]
    asym = np.abs(mat - mat.T)
    if asym.max() > SYMMETRY_TOLERANCE * max(scale, 1e-300):
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        return [f"{field} is not symmetric: entry ({labels[i]}, {labels[j]}) is {mat[i, j]:.6g} but "
                f"({labels[j]}, {labels[i]}) is {mat[j, i]:.6g} (relative tolerance {SYMMETRY_TOLERANCE:g})"]
    problems = []
    for i in np.flatnonzero(np.diag(mat) < 0):
        problems.append(f"{field} has a negative variance for '{labels[i]}': {mat[i, i]:.6g}")
    try:
        eig = np.linalg.eigvalsh((mat + mat.T) / 2)
    except np.linalg.LinAlgError:
        return [f"{field}: its eigenvalues cannot be computed (the matrix is numerically degenerate): check it"]
    tol = PSD_TOLERANCE * max(1.0, float(eig[-1]))
    if eig[0] < -tol:
        problems.append(f"{field} is not positive semi-definite: its most negative eigenvalue is {eig[0]:.6g}, "
                        f"below the tolerance -{tol:.3g}: repair the estimate (e.g. shrinkage or eigenvalue "
                        "clipping) before using it")
    return problems


def load_snapshot(source: Snapshot | str | Path | dict[str, Any]) -> Snapshot:
    """Load and validate a snapshot from a model, a JSON file path, JSON text or a mapping.

    Raises
    ------
    InputError
        Listing every problem found, each naming the field and the opportunity id.
    """
    if isinstance(source, Snapshot):
        return source
    fast = validate_json_source(Snapshot, source)
    if fast is not None:
        return fast
    raw, label = read_source(source, "snapshot")
    return validate_document(Snapshot, raw, label, subject_in_list(raw, "opportunities", "opportunity"))
