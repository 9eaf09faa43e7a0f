"""Current holdings: what the portfolio owns before the rebalance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bondfolio.inputs.base import Amount, StrictModel, read_source, validate_document

__all__ = ["HOLDINGS_SCHEMA", "Holdings", "load_holdings"]

HOLDINGS_SCHEMA = "bondfolio.holdings/1"


class Holdings(StrictModel):
    """Positions held now, by opportunity id, and idle cash.

    ``unit`` says what the position amounts are: ``base`` (base currency, the default) or ``tokens``
    (token units, converted with each opportunity's ``price``). Idle ``cash`` is always in base
    currency. Hedge positions may be negative (short notional); others may not.
    """

    schema_: Literal["bondfolio.holdings/1"] = Field(alias="schema", default="bondfolio.holdings/1")
    unit: Literal["base", "tokens"] = "base"
    """Unit of ``positions``: base currency or token units."""
    positions: dict[str, float] = Field(default_factory=dict)
    """Amount held per opportunity id, in ``unit``."""
    cash: Amount = 0.0
    """Idle cash in base currency."""

    model_config = StrictModel.model_config | {"populate_by_name": True, "serialize_by_alias": True}


def load_holdings(source: Holdings | str | Path | dict[str, Any]) -> Holdings:
    """Load and validate holdings from a model, a JSON file path, JSON text or a mapping."""
    if isinstance(source, Holdings):
        return source
    raw, label = read_source(source, "holdings")
    return validate_document(Holdings, raw, label)
