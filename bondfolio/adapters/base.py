"""The shared reader machinery: market specs, calls, batched reads at one pinned block.

A reader is a generator: it yields the list of :class:`Call` objects it needs for the next round and
receives their decoded results, until it returns the opportunity's fields. :func:`read_markets` runs
every market's reader in lockstep, so each round is one request for all markets together (Multicall3
``aggregate3`` when the chain has it, a batched JSON-RPC request otherwise), and reading 100 markets
takes as many round trips as the deepest reader, not 100 times that.

All reads are at one block, pinned by number at the start and checked by hash at the end: a snapshot
never mixes blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any, ClassVar

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from pydantic import Field, field_validator

from bondfolio.errors import MarketError
from bondfolio.inputs.base import Address, StrictModel
from bondfolio.inputs.kinds import Tier

__all__ = [
    "RAY",
    "SECONDS_PER_YEAR",
    "WAD",
    "Address",
    "Call",
    "Fn",
    "MarketSpec",
    "Reader",
    "Result",
    "UnitPriced",
    "apr_to_apy",
    "fraction",
    "market_kinds",
]

#: Canonical Multicall3 address (same on most chains).
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
RAY = 10**27
WAD = 10**18
SECONDS_PER_YEAR = 365 * 24 * 3600


def fraction(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` of on-chain integers, exact to the last float bit (via Decimal)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return float(Decimal(numerator) / Decimal(denominator))


def apr_to_apy(apr: float, periods: int = SECONDS_PER_YEAR) -> float:
    """Compounded yield of a simple annual rate: ``(1 + apr / periods) ** periods - 1`` (per-second
    compounding by default, Aave's UI convention), computed without cancellation."""
    return math.expm1(periods * math.log1p(apr / periods))


@dataclass(frozen=True)
class Fn:
    """A contract function by signature, with its output types, e.g.
    ``Fn("balanceOf(address)", "uint256")``."""

    signature: str
    outputs: str

    @property
    def selector(self) -> bytes:
        return function_signature_to_4byte_selector(self.signature)

    @property
    def input_types(self) -> list[str]:
        inner = self.signature[self.signature.index("(") + 1 : -1]
        return _split_types(inner)

    @property
    def output_types(self) -> list[str]:
        return _split_types(self.outputs)

    def __call__(self, target: str, *args: Any) -> Call:
        return Call(to_checksum_address(target), self, tuple(args))


@dataclass(frozen=True)
class Call:
    """One read: a function of a contract with its arguments, at the pinned block unless ``block``."""

    target: str
    fn: Fn
    args: tuple[Any, ...] = ()
    block: int | None = None

    def at(self, block: int) -> Call:
        """The same call at another (older) block."""
        return Call(self.target, self.fn, self.args, block)

    @property
    def data(self) -> bytes:
        return self.fn.selector + encode(self.fn.input_types, list(self.args))


@dataclass(frozen=True)
class Result:
    """The answer to one :class:`Call`: success flag, decoded values (a tuple), raw bytes."""

    call: Call
    success: bool
    raw: bytes
    values: tuple[Any, ...] | None = None

    @classmethod
    def of(cls, call: Call, success: bool, raw: bytes) -> Result:
        values = None
        if success and raw:
            try:
                values = tuple(decode(call.fn.output_types, raw))
            except Exception:
                values = None
        return cls(call, success, raw, values)

    @property
    def ok(self) -> bool:
        return self.values is not None

    @property
    def value(self) -> Any:
        """The single decoded value (for one-output functions)."""
        if self.values is None:
            raise ValueError(f"{self.call.fn.signature} on {self.call.target} gave no decodable answer")
        return self.values[0]


def _split_types(text: str) -> list[str]:
    out, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip():
        out.append(current.strip())
    return out


TIMESTAMP = Fn("getCurrentBlockTimestamp()", "uint256")


def block_timestamp(block: int) -> Call:
    """A call answering the timestamp of ``block`` (Multicall3's getter, or the block header without it)."""
    return Call(MULTICALL3, TIMESTAMP, (), block)


#: A reader: yields rounds of calls, receives their results, returns the opportunity's fields.
Reader = Generator[list[Call], list[Result], dict[str, Any]]


class MarketSpec(StrictModel):
    """One ``[[markets]]`` table of MARKETS.toml. Subclasses (one per protocol) add addresses and
    register their ``protocol``, like constraint kinds do."""

    protocol: str
    chain: str = Field(min_length=1)
    """Chain name, matching the snapshot's ``as_of.chains`` key."""
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/@+-]+$")
    """Opportunity id (default: protocol, chain and token symbol)."""
    name: str | None = None
    risk_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Override of the protocol's default risk score."""
    tier: Tier | None = None
    tags: tuple[str, ...] = ()
    symbol: str | None = None
    """Override of the asset symbol read from the chain."""

    key_field: ClassVar[str] = ""
    """The field that identifies the market on chain (an address or id), for messages."""
    default_risk_score: ClassVar[float] = 0.2
    """Used when the table gives no ``risk_score``: a deliberately cautious placeholder. Set real
    scores per market in MARKETS.toml."""
    _registry: ClassVar[dict[str, type[MarketSpec]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field_info = cls.model_fields.get("protocol")
        value = field_info.default if field_info is not None else None
        if isinstance(value, str):
            MarketSpec._registry[value] = cls

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @property
    def label(self) -> str:
        """How errors name this market."""
        return f"{self.protocol} market {self.id or self.address_label()} on {self.chain}"

    def address_label(self) -> str:
        return str(getattr(self, self.key_field, "")) if self.key_field else ""

    def reader(self, ctx: ReadContext) -> Reader:
        """The generator reading this market (see the module docstring)."""
        raise NotImplementedError

    def fail(self, message: str) -> MarketError:
        return MarketError(f"{self.label}: {message}")

    def expect(self, result: Result, what: str) -> Result:
        """``result`` if it decoded, else a :class:`MarketError` naming the market and the call."""
        if not result.ok:
            reason = "reverted" if not result.success else ("returned no data (no contract at that address?)"
                                                             if not result.raw else "returned data of another shape")
            raise self.fail(f"{what} ({result.call.fn.signature} on {result.call.target}) {reason}: check the "
                            "address and the protocol")
        return result


class UnitPriced(MarketSpec):
    """A market whose asset price the reader does not read: ``price`` (base currency per unit of the
    asset, default 1 for stablecoins) comes from MARKETS.toml."""

    price: float = Field(default=1.0, gt=0.0)
    """Base currency per unit of the market's asset."""


def market_kinds() -> dict[str, type[MarketSpec]]:
    """Registered protocols (after :mod:`bondfolio.adapters` is imported)."""
    return dict(sorted(MarketSpec._registry.items()))


@dataclass
class ReadContext:
    """What readers know about the read: the pinned block and a way to ask for an older block."""

    block_number: int
    timestamp: int
    chain: str
    older_block_timestamp: Callable[[int], int] = field(default=lambda n: 0)
    chain_id: int = 1
    """The node's chain id (recorded in each opportunity's ``execution``)."""


def run_lockstep(
    readers: Sequence[tuple[MarketSpec, Reader]],
    execute: Callable[[list[Call]], list[Result]],
) -> tuple[list[dict[str, Any]], int]:
    """Drive every reader one round at a time; each round's calls go out in one ``execute``.

    Returns each market's fields (in order) and the number of rounds.
    """
    pending: dict[int, list[Call]] = {}
    outputs: dict[int, dict[str, Any]] = {}
    for i, (_spec, gen) in enumerate(readers):
        try:
            pending[i] = next(gen)
        except StopIteration as stop:
            outputs[i] = stop.value
    rounds = 0
    while pending:
        order = sorted(pending)
        flat = [call for i in order for call in pending[i]]
        results = execute(flat) if flat else []
        rounds += 1
        cursor = 0
        nxt: dict[int, list[Call]] = {}
        for i in order:
            count = len(pending[i])
            chunk = results[cursor : cursor + count]
            cursor += count
            try:
                nxt[i] = readers[i][1].send(chunk)
            except StopIteration as stop:
                outputs[i] = stop.value
        pending = nxt
    return [outputs[i] for i in range(len(readers))], rounds
