"""ERC-4626 vaults (sDAI/sUSDS, tokenized T-bill wrappers): share price, assets, limits, yield from growth.

Also ``maxDeposit`` (0 means the vault takes no deposits: not depositable) and, for a ``holder``
address, ``maxWithdraw`` (what that holder can take out now: its available liquidity).

Yield is the share price's growth between the pinned block and ``lookback_blocks`` earlier,
annualized by compounding over the two blocks' timestamps:
``apy = (p1 / p0) ** (seconds_per_year / (t1 - t0)) - 1`` with ``p = convertToAssets(10 ** decimals)``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from bondfolio.adapters.base import (
    SECONDS_PER_YEAR,
    Address,
    Fn,
    ReadContext,
    Reader,
    UnitPriced,
    block_timestamp,
    fraction,
)
from bondfolio.adapters.erc20 import DECIMALS, SYMBOL

__all__ = ["Erc4626Vault", "growth_apy"]

ASSET = Fn("asset()", "address")
TOTAL_ASSETS = Fn("totalAssets()", "uint256")
CONVERT_TO_ASSETS = Fn("convertToAssets(uint256)", "uint256")
MAX_DEPOSIT = Fn("maxDeposit(address)", "uint256")
MAX_WITHDRAW = Fn("maxWithdraw(address)", "uint256")
TOTAL_SUPPLY = Fn("totalSupply()", "uint256")
UINT_MAX = 2**256 - 1
ZERO = "0x0000000000000000000000000000000000000000"


#: Shortest share-price window that is annualized (shorter ones amplify rounding into absurd yields).
MIN_WINDOW_SECONDS = 3600


def growth_apy(p0: int, p1: int, seconds: int) -> float:
    """Annualized compounded growth from ``p0`` to ``p1`` over ``seconds``.

    Raises ``ValueError`` for a non-positive price, a window under :data:`MIN_WINDOW_SECONDS`, or a
    growth whose annualized value overflows.
    """
    if p0 <= 0 or p1 <= 0:
        raise ValueError(f"share prices must be positive (got {p0} then {p1})")
    if seconds < MIN_WINDOW_SECONDS:
        raise ValueError(f"the share-price window is {seconds} s, under {MIN_WINDOW_SECONDS} s: too short to "
                         "annualize; raise lookback_blocks")
    try:
        return math.expm1(math.log(p1 / p0) * SECONDS_PER_YEAR / seconds)
    except OverflowError:
        raise ValueError(f"the share price grew {p1 / p0:.6g}x in {seconds} s: no plausible yield") from None


class Erc4626Vault(UnitPriced):
    """``protocol = "erc4626"``: a vault by ``vault`` address; yield over ``lookback_blocks``."""

    protocol: Literal["erc4626"] = "erc4626"
    vault: Address
    lookback_blocks: int = Field(default=50_400, ge=1)
    """Blocks between the two share-price reads (50,400 is about a week of 12-second blocks)."""
    kind: Literal["floating", "fixed", "vault"] = "vault"
    duration: float = Field(default=0.0, ge=0.0)
    """Years of rate sensitivity (T-bill wrappers: their weighted maturity)."""
    withdrawal_delay_days: float = Field(default=0.0, ge=0.0)
    holder: Address | None = None
    """The treasury's address: its ``maxWithdraw`` becomes ``available_liquidity`` and its
    ``maxDeposit`` decides ``depositable``. Without it, liquidity is unknown and deposits are judged by
    ``maxDeposit(0x0)``."""

    key_field = "vault"
    default_risk_score = 0.15



    def reader(self, ctx: ReadContext) -> Reader:
        then = ctx.block_number - self.lookback_blocks
        if then < 0:
            raise self.fail(f"lookback_blocks {self.lookback_blocks} reaches before block 0 (pinned block "
                            f"{ctx.block_number}): use a smaller lookback")
        who = self.holder or ZERO
        first = yield [ASSET(self.vault), DECIMALS(self.vault), TOTAL_ASSETS(self.vault), SYMBOL(self.vault),
                       MAX_DEPOSIT(self.vault, who), MAX_WITHDRAW(self.vault, who), TOTAL_SUPPLY(self.vault)]
        asset = self.expect(first[0], "reading the vault's asset").value
        decimals = int(self.expect(first[1], "reading the vault's decimals").value)
        total = int(self.expect(first[2], "reading total assets").value)
        unit = 10**decimals
        second = yield [CONVERT_TO_ASSETS(self.vault, unit), CONVERT_TO_ASSETS(self.vault, unit).at(then),
                        block_timestamp(then), SYMBOL(asset), DECIMALS(asset)]
        p1 = int(self.expect(second[0], "reading the share price").value)
        p0 = int(self.expect(second[1], f"reading the share price at block {then}").value)
        t0 = int(self.expect(second[2], f"reading the timestamp of block {then}").value)
        symbol = self.symbol or (second[3].value if second[3].ok else asset)
        asset_decimals = int(self.expect(second[4], "reading the asset's decimals").value)
        asset_scale = 10**asset_decimals
        share_price = fraction(p1, asset_scale) * self.price
        vault_symbol = first[3].value if first[3].ok else self.vault
        max_deposit = int(self.expect(first[4], "reading maxDeposit").value)
        max_withdraw = int(self.expect(first[5], "reading maxWithdraw").value)
        shares = int(self.expect(first[6], "reading the vault's total supply").value)
        try:
            apy = growth_apy(p0, p1, ctx.timestamp - t0)
        except ValueError as exc:
            raise self.fail(f"{exc} (blocks {then} to {ctx.block_number})") from None
        return {
            "id": self.id or f"erc4626-{self.chain}-{str(vault_symbol).lower()}",
            "protocol": "erc4626", "chain": self.chain, "asset": symbol, "kind": self.kind,
            "apy": apy, "duration": self.duration,
            "tvl": fraction(total, asset_scale) * self.price, "price": share_price, "market": self.vault,
            "withdrawal_delay_days": self.withdrawal_delay_days, "depositable": max_deposit > 0,
            **({"rate_curve": {"model": "dilution", "total_assets": fraction(total, asset_scale) * self.price}}
               if total > 0 else {}),
            **({"available_liquidity": fraction(max_withdraw, asset_scale) * self.price} if self.holder else {}),
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "erc4626", "target": self.vault, "asset": asset,
                "asset_symbol": symbol, "asset_decimals": asset_decimals, "asset_price": self.price,
                "receipt": self.vault, "measure": "vault_shares", "receipt_decimals": decimals,
                # the holder's maxWithdraw when known, else everything the vault holds
                "free_liquidity": max_withdraw if self.holder else total,
                "deposit_headroom": None if max_deposit == UINT_MAX else max_deposit,
                "total_assets": total, "total_shares": shares,
            },
            "_details": {"share_price_now": p1, "share_price_then": p0, "seconds": ctx.timestamp - t0,
                         "max_deposit": max_deposit, "max_withdraw": max_withdraw},
        }
