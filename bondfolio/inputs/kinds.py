"""The enumerations of an opportunity: its ``kind`` and its ``tier`` (enums, so a typo is an error)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Kind", "Tier"]


class Kind(StrEnum):
    """How a position's value responds to rates."""

    floating = "floating"
    """Variable-rate deposit (lending markets, savings vaults): duration close to 0."""
    fixed = "fixed"
    """Fixed rate to a maturity (principal tokens, T-bills): duration close to time to maturity."""
    vault = "vault"
    """A managed vault over other positions."""
    hedge = "hedge"
    """A hedge instrument with signed notional (weights may be negative); not counted in the budget."""


class Tier(StrEnum):
    """The book a position belongs to."""

    core = "core"
    yield_ = "yield"
    hedge = "hedge"
