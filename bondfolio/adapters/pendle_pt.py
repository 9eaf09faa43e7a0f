"""Pendle V2 principal tokens: fixed-rate, fixed-maturity (on-chain zero-coupon bonds).

From the market's ``readState(router)`` (its ``expiry``, pool, curve parameters and ``lastLnImpliedRate``,
ln(1 + implied APY) at 1e18), ``readTokens()`` (SY, PT, YT), the SY's ``exchangeRate()`` and
``assetInfo()`` and the YT's ``pyIndexStored()``: implied APY = ``exp(ln_rate) - 1``, PT price in the
asset = ``exp(-ln_rate * time to expiry / 365 days)`` (what Pendle's own oracle ``getPtToAssetRate(market,
0)`` returns), duration = time to expiry in years. The ``rate_curve`` carries the market's state so the
program prices trades on the exact AMM (:mod:`bondfolio.solver.pendle_amm`). An expired market is an
opportunity that earns nothing and takes no deposits (``depositable = false``): its PT redeems for the
asset 1:1, which the plan does with ``redeemPyToToken``.

``router`` (MARKETS.toml): the Pendle router the plan's legs call (``swapExactTokenForPt``,
``swapExactPtForToken``, ``redeemPyToToken``); the market's fee is read as that router sees it (a router
may have an overridden fee). Without it the market is read but its legs are left out of plans.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from bondfolio.adapters.base import (
    MULTICALL3,
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

__all__ = ["PendlePtMarket"]

# MarketState is a static struct: decoded as its 9 fields in a row
READ_STATE = Fn("readState(address)", "int256,int256,int256,address,int256,uint256,uint256,uint256,uint256")
READ_TOKENS = Fn("readTokens()", "address,address,address")
EXCHANGE_RATE = Fn("exchangeRate()", "uint256")
ASSET_INFO = Fn("assetInfo()", "uint8,address,uint8")
PY_INDEX_STORED = Fn("pyIndexStored()", "uint256")


class PendlePtMarket(UnitPriced):
    """``protocol = "pendle-pt"``: the PT of a Pendle market by ``market`` address."""

    protocol: Literal["pendle-pt"] = "pendle-pt"
    market: Address
    router: Address | None = None
    """The Pendle router plans trade through (``PendleRouterV4`` on mainnet); optional."""

    key_field = "market"
    default_risk_score = 0.30

    def reader(self, ctx: ReadContext) -> Reader:
        first = yield [READ_STATE(self.market, self.router or MULTICALL3), READ_TOKENS(self.market)]
        state = self.expect(first[0], "reading the market state").values
        assert state is not None
        tokens = self.expect(first[1], "reading the market's tokens").values
        assert tokens is not None
        sy, pt, yt = tokens
        total_pt, total_sy, scalar_root = int(state[0]), int(state[1]), int(state[4])
        expiry, ln_fee, reserve_fee, ln_rate = int(state[5]), int(state[6]), int(state[7]), int(state[8])
        expired = expiry <= ctx.timestamp
        second = yield [SYMBOL(pt), DECIMALS(pt), EXCHANGE_RATE(sy), ASSET_INFO(sy), PY_INDEX_STORED(yt)]
        pt_decimals = int(self.expect(second[1], "reading the PT's decimals").value)
        sy_rate = int(self.expect(second[2], "reading the SY's exchange rate").value)
        info = self.expect(second[3], "reading the SY's asset").values
        assert info is not None
        asset, asset_decimals = str(info[1]), int(info[2])
        index = max(sy_rate, int(self.expect(second[4], "reading the YT's PY index").value))
        third = yield [SYMBOL(asset)]
        asset_symbol = str(third[0].value) if third[0].ok else asset
        symbol = self.symbol or asset_symbol
        pt_symbol = second[0].value if second[0].ok else pt
        years = max(expiry - ctx.timestamp, 0) / SECONDS_PER_YEAR
        rate = fraction(ln_rate, WAD)
        maturity = datetime.fromtimestamp(expiry, UTC)
        curve = None
        if not expired and total_pt > 0 and total_sy > 0 and scalar_root > 0 and ln_rate > 0:
            curve = {"model": "pendle", "total_pt": total_pt, "total_sy": total_sy, "py_index": index,
                     "sy_exchange_rate": sy_rate, "scalar_root": scalar_root, "ln_fee_rate_root": ln_fee,
                     "reserve_fee_percent": reserve_fee, "ln_implied_rate": ln_rate, "expiry": expiry,
                     "timestamp": ctx.timestamp, "decimals": pt_decimals}
        pendle = {"market": self.market, "sy": sy, "pt": pt, "yt": yt, "expiry": expiry}
        if self.router is not None:
            pendle["router"] = self.router
        return {
            "id": self.id or f"pendle-pt-{self.chain}-{str(pt_symbol).lower()}",
            "protocol": "pendle", "chain": self.chain, "asset": symbol, "kind": "fixed",
            "apy": 0.0 if expired else math.expm1(rate), "duration": years,
            **({} if expired else {"maturity": maturity.isoformat()}),
            "price": self.price if expired else math.exp(-rate * years) * self.price, "market": self.market,
            **({"rate_curve": curve} if curve else {}),
            # matured: a PT redeems for the SY worth one asset and earns nothing more; it can only be redeemed
            **({"depositable": False} if expired else {}),
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "pendle-pt", "target": self.router or self.market,
                "asset": asset, "asset_symbol": asset_symbol, "asset_decimals": asset_decimals,
                "asset_price": self.price, "receipt": pt, "measure": "pt_balance",
                "receipt_decimals": pt_decimals, "free_liquidity": total_sy * index // 10**18,
                "pendle": pendle,
            },
            "_details": {"ln_implied_rate": ln_rate, "expiry": expiry, "pt": pt, "sy": sy, "py_index": index},
        }
