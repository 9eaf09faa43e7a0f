"""Compound v3 (Comet) markets: supply rate, utilization, totals, and the kinked supply curve.

Convention: ``getSupplyRate(getUtilization())`` is a per-second rate scaled by 1e18; the APR is
``rate * 31536000 / 1e18`` and Compound's app shows ``(1 + rate / 1e18) ** 31536000 - 1``, which is
the ``apy`` here. Utilization is ``totalBorrow / totalSupply`` (present values).
"""

from __future__ import annotations

from typing import Literal

from bondfolio.adapters.base import (
    SECONDS_PER_YEAR,
    WAD,
    Address,
    Fn,
    ReadContext,
    Reader,
    UnitPriced,
    apr_to_apy,
    fraction,
)
from bondfolio.adapters.erc20 import DECIMALS, SYMBOL

__all__ = ["CompoundV3Market"]

BASE_TOKEN = Fn("baseToken()", "address")
UTILIZATION = Fn("getUtilization()", "uint256")
SUPPLY_RATE = Fn("getSupplyRate(uint256)", "uint64")
TOTAL_SUPPLY = Fn("totalSupply()", "uint256")
TOTAL_BORROW = Fn("totalBorrow()", "uint256")
KINK = Fn("supplyKink()", "uint64")
SLOPE_LOW = Fn("supplyPerSecondInterestRateSlopeLow()", "uint64")
SLOPE_HIGH = Fn("supplyPerSecondInterestRateSlopeHigh()", "uint64")
RATE_BASE = Fn("supplyPerSecondInterestRateBase()", "uint64")


class CompoundV3Market(UnitPriced):
    """``protocol = "compound-v3"``: one Comet market. Needs ``comet``. Base-token price is taken as
    ``price`` (default 1, for stablecoin markets) since Comet prices collateral, not its base."""

    protocol: Literal["compound-v3"] = "compound-v3"
    comet: Address

    key_field = "comet"
    default_risk_score = 0.10



    def reader(self, ctx: ReadContext) -> Reader:
        first = yield [BASE_TOKEN(self.comet), UTILIZATION(self.comet), TOTAL_SUPPLY(self.comet),
                       TOTAL_BORROW(self.comet), KINK(self.comet), SLOPE_LOW(self.comet), SLOPE_HIGH(self.comet),
                       RATE_BASE(self.comet)]
        base = self.expect(first[0], "reading the base token").value
        utilization = int(self.expect(first[1], "reading utilization").value)
        supply, borrow = (int(self.expect(r, "reading totals").value) for r in first[2:4])
        kink, low, high, rate_base = (int(self.expect(r, "reading the supply curve").value) for r in first[4:8])
        second = yield [SUPPLY_RATE(self.comet, utilization), SYMBOL(base), DECIMALS(base)]
        rate = int(self.expect(second[0], "reading the supply rate").value)
        symbol = self.symbol or (second[1].value if second[1].ok else base)
        decimals = int(self.expect(second[2], "reading the base token's decimals").value)
        scale = 10**decimals
        apr = fraction(rate * SECONDS_PER_YEAR, WAD)
        return {
            "id": self.id or f"compound-v3-{self.chain}-{symbol.lower()}",
            "protocol": "compound-v3", "chain": self.chain, "asset": symbol, "kind": "floating",
            "apy": apr_to_apy(apr), "duration": 0.0,
            "available_liquidity": fraction(max(supply - borrow, 0), scale) * self.price,
            "tvl": fraction(supply, scale) * self.price, "price": self.price, "market": self.comet,
            "rate_curve": {
                "model": "kinked", "applies_to": "supply", "kink": fraction(kink, WAD),
                "base": fraction(rate_base * SECONDS_PER_YEAR, WAD),
                "slope_low": fraction(low * SECONDS_PER_YEAR, WAD),
                "slope_high": fraction(high * SECONDS_PER_YEAR, WAD),
                "total_supply": fraction(supply, scale) * self.price,
                "total_borrow": fraction(borrow, scale) * self.price,
            },
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "compound-v3", "target": self.comet, "asset": base,
                "asset_symbol": symbol, "asset_decimals": decimals, "asset_price": self.price, "receipt": self.comet,
                "measure": "comet_balance", "receipt_decimals": decimals, "free_liquidity": max(supply - borrow, 0),
            },
            "_details": {"supply_rate_per_second": rate, "utilization": fraction(utilization, WAD)},
        }
