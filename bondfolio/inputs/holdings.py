"""Current holdings: what the portfolio owns before the rebalance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from bondfolio.inputs.base import (
    Address,
    Amount,
    OmitUnset,
    StrictModel,
    read_source,
    validate_document,
    validate_json_source,
)

__all__ = ["HOLDINGS_SCHEMA", "Holdings", "IdleBalance", "PositionUnits", "load_holdings"]

HOLDINGS_SCHEMA = "bondfolio.holdings/1"

#: Largest amount a holding may state (base currency or tokens): a quadrillion; more is a units error
#: (wei given as tokens) and would overflow the arithmetic downstream.
MAX_AMOUNT = 1e15


class PositionUnits(StrictModel):
    """A position as the chain measures it (token base units, exact integers)."""

    units: int = Field(ge=0)
    """In the position's measure (see :mod:`bondfolio.inputs.execution`): aToken or Comet balance,
    vault or Morpho supply shares, PT."""
    assets: int = Field(ge=0)
    """What those units are worth in the asset's base units at the read block (rounded down)."""


class IdleBalance(StrictModel):
    """An asset the account holds outside every market (counted in ``cash``)."""

    chain: str
    token: Address
    symbol: str
    decimals: int = Field(ge=0, le=36)
    units: int = Field(ge=0)
    """Token base units."""
    value: Amount
    """Base currency."""


class Holdings(OmitUnset, StrictModel):
    """Positions held now, by opportunity id, and idle cash.

    ``unit`` says what the position amounts are: ``base`` (base currency, the default) or ``tokens``
    (token units, converted with each opportunity's ``price``). Idle ``cash`` is always in base
    currency. Hedge positions may be negative (short notional); others may not.
    """

    schema_: Literal["bondfolio.holdings/1"] = Field(alias="schema", default="bondfolio.holdings/1")
    unit: Literal["base", "tokens"] = "base"
    """Unit of ``positions``: base currency or token units."""
    positions: dict[str, Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]] = Field(default_factory=dict)
    """Amount held per opportunity id, in ``unit`` (within 1e15: larger is a units error)."""
    cash: Annotated[float, Field(ge=0.0, le=MAX_AMOUNT)] = 0.0
    """Idle cash in base currency."""
    account: Address | None = None
    """The account (a Safe) whose positions these are, when read from the chain."""
    blocks: dict[str, int] | None = None
    """Block number each chain was read at (``bondfolio holdings``)."""
    units: dict[str, PositionUnits] | None = None
    """Per opportunity id, the position in token base units as read from the chain."""
    idle: tuple[IdleBalance, ...] | None = None
    """Per asset, the account's balance outside the markets (its sum is ``cash``)."""

    omit_when_none = ("account", "blocks", "units", "idle")

    model_config = StrictModel.model_config | {"populate_by_name": True, "serialize_by_alias": True}


def load_holdings(source: Holdings | str | Path | dict[str, Any]) -> Holdings:
    """Load and validate holdings from a model, a JSON file path, JSON text or a mapping."""
    if isinstance(source, Holdings):
        return source
    fast = validate_json_source(Holdings, source)
    if fast is not None:
        return fast
    raw, label = read_source(source, "holdings")
    return validate_document(Holdings, raw, label)
