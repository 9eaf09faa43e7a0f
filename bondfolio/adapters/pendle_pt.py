"""Pendle v2 principal tokens: fixed-rate, fixed-maturity (on-chain zero-coupon bonds).

From ``readState`` the market's ``expiry`` and ``lastLnImpliedRate`` (ln(1 + implied APY), 1e18):
implied APY = ``exp(ln_rate) - 1``, PT price in asset = ``exp(-ln_rate * time_to_expiry / 365 days)``,
duration = time to expiry in years. An expired market is an error (its PT redeems 1:1: hold the asset).
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


class PendlePtMarket(UnitPriced):
    """``protocol = "pendle-pt"``: the PT of a Pendle market by ``market`` address."""

    protocol: Literal["pendle-pt"] = "pendle-pt"
    market: Address

    key_field = "market"
    default_risk_score = 0.30



    def reader(self, ctx: ReadContext) -> Reader:
        first = yield [READ_STATE(self.market, MULTICALL3), READ_TOKENS(self.market)]
        state = self.expect(first[0], "reading the market state").values
        assert state is not None
        tokens = self.expect(first[1], "reading the market's tokens").values
        assert tokens is not None
        sy, pt, yt = tokens
        total_pt, total_sy, scalar_root = int(state[0]), int(state[1]), int(state[4])
        expiry, ln_rate = int(state[5]), int(state[8])
        if expiry <= ctx.timestamp:
            raise self.fail(f"expired at {datetime.fromtimestamp(expiry, UTC).isoformat()}: its PT redeems 1:1; "
                            "drop the market from MARKETS.toml")
        second = yield [SYMBOL(pt), DECIMALS(pt), SYMBOL(sy)]
        symbol = self.symbol or (second[0].value if second[0].ok else pt)
        pt_decimals = int(self.expect(second[1], "reading the PT's decimals").value)
        years = (expiry - ctx.timestamp) / SECONDS_PER_YEAR
        rate = fraction(ln_rate, WAD)
        maturity = datetime.fromtimestamp(expiry, UTC)
        # Pendle's AMM: exchange rate = ln(p / (1 - p)) / rateScalar + anchor, p = PT share of the pool,
        # rateScalar = scalarRoot * year / time to expiry. Buying d PT moves p by -d / N, so the price
        # moves by about d / (N rateScalar p (1 - p)): depth = N rateScalar p (1 - p), in asset units
        # (SY counted 1:1 with the asset)
        depth = None
        pool = total_pt + total_sy
        if total_pt > 0 and total_sy > 0 and scalar_root > 0:
            share = total_pt / pool
            rate_scalar = fraction(scalar_root, WAD) * SECONDS_PER_YEAR / (expiry - ctx.timestamp)
            depth = fraction(pool, 10**pt_decimals) \
                * rate_scalar * share * (1 - share) * self.price
        return {
            "id": self.id or f"pendle-pt-{self.chain}-{str(symbol).lower()}-{maturity:%Y-%m-%d}",
            "protocol": "pendle", "chain": self.chain, "asset": symbol, "kind": "fixed",
            "apy": math.expm1(rate), "duration": years, "maturity": maturity.isoformat(),
            "price": math.exp(-rate * years) * self.price, "market": self.market,
            **({"rate_curve": {"model": "amm", "depth": depth}} if depth else {}),
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "pendle-pt", "target": self.market, "asset": sy,
                "asset_symbol": str(second[2].value if second[2].ok else sy),
                "asset_decimals": pt_decimals, "asset_price": self.price, "receipt": pt, "measure": "pt_balance",
                "receipt_decimals": pt_decimals, "free_liquidity": total_pt,
                "pendle": {"market": self.market, "sy": sy, "pt": pt, "yt": yt, "expiry": expiry},
            },
            "_details": {"ln_implied_rate": ln_rate, "expiry": expiry, "pt": pt},
        }


