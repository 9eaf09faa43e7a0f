"""What it takes to transact in an opportunity, as its reader found it at the snapshot's block.

Filled by the readers (:mod:`bondfolio.adapters`) and recorded in the snapshot under each
opportunity's ``execution``; the execution plan (:mod:`bondfolio.execution`) builds legs only from
this, never from a guessed address. Integers are token base units (wei-like, exact); ``asset_price``
is base currency per whole asset token.

How a position is measured (``measure``):

- ``atoken_balance`` (Aave v3): the aToken balance, in asset units (it accrues);
- ``comet_balance`` (Compound v3): Comet's ``balanceOf``, in base-asset units;
- ``vault_shares`` (ERC-4626, MetaMorpho): vault shares; assets = shares x total_assets / total_shares;
- ``morpho_supply_shares`` (Morpho Blue): supply shares; assets = shares x (total_assets + 1) /
  (total_shares + 1e6), Morpho's virtual shares, rounded down;
- ``pt_balance`` (Pendle): principal tokens, bought and sold for the SY's asset on the market's AMM
  (redeemed 1:1 for the asset at maturity).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bondfolio.inputs.base import Address, OmitUnset, StrictModel

__all__ = ["Execution", "MorphoParams", "PendleTokens"]

#: Morpho Blue's virtual shares and assets (SharesMathLib).
MORPHO_VIRTUAL_SHARES = 10**6
MORPHO_VIRTUAL_ASSETS = 1


class MorphoParams(StrictModel):
    """Morpho Blue ``MarketParams``: the market id is keccak256 of their ABI encoding."""

    loan_token: Address
    collateral_token: Address
    oracle: Address
    irm: Address
    lltv: int = Field(ge=0)
    """Liquidation LTV, 1e18 scale."""


class PendleTokens(OmitUnset, StrictModel):
    """A Pendle market's tokens."""

    market: Address
    sy: Address
    pt: Address
    yt: Address
    expiry: int = Field(ge=0)
    """Unix seconds."""
    router: Address | None = None
    """The router a plan's legs call (``swapExactTokenForPt``, ``swapExactPtForToken``,
    ``redeemPyToToken``); without it the market's legs are left out of plans."""

    omit_when_none = ("router",)


class Execution(OmitUnset, StrictModel):
    """Transaction data of one opportunity at the snapshot's block."""

    chain_id: int = Field(ge=1)
    protocol: Literal["aave-v3", "compound-v3", "morpho-blue", "metamorpho", "erc4626", "pendle-pt"]
    target: Address
    """The contract a leg calls: Aave Pool, Comet, Morpho Blue, the vault, or the Pendle router (the
    market itself when no router is known)."""
    asset: Address
    """The token deposited and withdrawn."""
    asset_symbol: str
    asset_decimals: int = Field(ge=0, le=36)
    asset_price: float = Field(gt=0.0)
    """Base currency per whole asset token."""
    receipt: Address
    """The token or contract that measures the position (aToken, Comet, vault, Morpho Blue, PT)."""
    measure: Literal["atoken_balance", "comet_balance", "vault_shares", "morpho_supply_shares", "pt_balance"]
    receipt_decimals: int = Field(ge=0, le=36)
    free_liquidity: int = Field(ge=0)
    """Asset base units that can be withdrawn from the market now (its cash)."""
    deposit_headroom: int | None = Field(default=None, ge=0)
    """Asset base units the market accepts before a cap binds (Aave supply cap, ERC-4626 ``maxDeposit``,
    MetaMorpho caps); ``None`` when nothing caps deposits."""
    total_assets: int | None = Field(default=None, ge=0)
    """Share-measured positions: the assets behind ``total_shares`` (asset base units)."""
    total_shares: int | None = Field(default=None, ge=0)
    morpho: MorphoParams | None = None
    """Morpho Blue markets: the market parameters every call takes."""
    market_id: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{64}$")
    """Morpho Blue markets: the market id."""
    pendle: PendleTokens | None = None

    omit_when_none = ("deposit_headroom", "total_assets", "total_shares", "morpho", "market_id", "pendle")

    def assets_of(self, units: int) -> int:
        """Asset base units of a position of ``units`` (its ``measure``), rounded down as the protocol
        rounds a withdrawal."""
        if self.measure == "vault_shares":
            if not self.total_shares:
                return 0
            return units * (self.total_assets or 0) // self.total_shares
        if self.measure == "morpho_supply_shares":
            return (units * ((self.total_assets or 0) + MORPHO_VIRTUAL_ASSETS)
                    // ((self.total_shares or 0) + MORPHO_VIRTUAL_SHARES))
        return units
