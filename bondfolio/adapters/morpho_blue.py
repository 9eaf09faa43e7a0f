"""Morpho Blue markets: totals, fee, the IRM's borrow rate and rate at target.

Reads ``market(id)`` and ``idToMarketParams(id)``, then the IRM's ``borrowRateView(params, market)``
(the rate Morpho would charge now, including adaptation since the last update) and, for the
adaptive-curve IRM, ``rateAtTarget(id)``. Supply APY follows Morpho's own app:
``expm1(borrow_rate * utilization * (1 - fee) * 31536000)`` with per-second rates in 1e18.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import field_validator

from bondfolio.adapters.base import (
    SECONDS_PER_YEAR,
    WAD,
    Address,
    Fn,
    ReadContext,
    Reader,
    UnitPriced,
    fraction,
)
from bondfolio.adapters.erc20 import DECIMALS, SYMBOL

__all__ = ["MorphoBlueMarket"]

MARKET = Fn("market(bytes32)", "uint128,uint128,uint128,uint128,uint128,uint128")
PARAMS = Fn("idToMarketParams(bytes32)", "address,address,address,address,uint256")
BORROW_RATE_VIEW = Fn("borrowRateView((address,address,address,address,uint256),"
                      "(uint128,uint128,uint128,uint128,uint128,uint128))", "uint256")
RATE_AT_TARGET = Fn("rateAtTarget(bytes32)", "int256")


class MorphoBlueMarket(UnitPriced):
    """``protocol = "morpho-blue"``: one market by ``morpho`` address and ``market_id``."""

    protocol: Literal["morpho-blue"] = "morpho-blue"
    morpho: Address
    market_id: str

    key_field = "market_id"
    default_risk_score = 0.20


    @field_validator("market_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.match(r"^0x[0-9a-fA-F]{64}$", value):
            raise ValueError(f"market_id {value!r} is not a 0x-prefixed 32-byte hex id")
        return value.lower()


    def reader(self, ctx: ReadContext) -> Reader:
        key = bytes.fromhex(self.market_id[2:])
        first = yield [MARKET(self.morpho, key), PARAMS(self.morpho, key)]
        market = self.expect(first[0], "reading the market").values
        params = self.expect(first[1], "reading the market parameters").values
        assert market is not None and params is not None
        if int(params[0], 16) == 0:
            raise self.fail(f"market id {self.market_id} does not exist on Morpho {self.morpho}")
        loan, irm = params[0], params[3]
        second = yield [BORROW_RATE_VIEW(irm, tuple(params), tuple(market)), RATE_AT_TARGET(irm, key),
                        SYMBOL(loan), DECIMALS(loan)]
        borrow_rate = int(self.expect(second[0], "reading the IRM's borrow rate").value)
        symbol = self.symbol or (second[2].value if second[2].ok else loan)
        decimals = int(self.expect(second[3], "reading the loan token's decimals").value)
        scale = 10**decimals
        supply, borrow, fee = int(market[0]), int(market[2]), int(market[5])
        utilization = fraction(borrow, supply) if supply else 0.0
        rate_apr = fraction(borrow_rate * SECONDS_PER_YEAR, WAD)
        fee_f = fraction(fee, WAD)
        out = {
            "id": self.id or f"morpho-blue-{self.chain}-{str(symbol).lower()}-{self.market_id[2:10]}",
            "protocol": "morpho-blue", "chain": self.chain, "asset": symbol, "kind": "floating",
            "apy": math.expm1(rate_apr * utilization * (1 - fee_f)), "duration": 0.0,
            "available_liquidity": fraction(max(supply - borrow, 0), scale) * self.price,
            "tvl": fraction(supply, scale) * self.price, "price": self.price, "market": self.market_id,
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "morpho-blue", "target": self.morpho, "asset": loan,
                "asset_symbol": symbol, "asset_decimals": decimals, "asset_price": self.price, "receipt": self.morpho,
                "measure": "morpho_supply_shares", "receipt_decimals": decimals + 6,
                "free_liquidity": max(supply - borrow, 0), "total_assets": supply, "total_shares": int(market[1]),
                "morpho": {"loan_token": params[0], "collateral_token": params[1], "oracle": params[2],
                           "irm": params[3], "lltv": int(params[4])},
                "market_id": self.market_id,
            },
            "_details": {"borrow_rate_per_second": borrow_rate, "utilization": utilization, "irm": irm},
        }
        if second[1].ok:
            out["rate_curve"] = {
                "model": "adaptive", "rate_at_target": fraction(int(second[1].value) * SECONDS_PER_YEAR, WAD),
                "fee": fee_f, "total_supply": fraction(supply, scale) * self.price,
                "total_borrow": fraction(borrow, scale) * self.price,
            }
        return out
