"""Aave v3 reserves: supply APY, utilization, liquidity, flags and the interest-rate curve.

Reads (three rounds): ``Pool.getReserveData(asset)`` (same layout in v3.0 and v3.1+), the token's
symbol and decimals, the Pool's addresses provider; then the strategy's curve (v3.0 getters, or
v3.1+ ``getInterestRateData(asset)``), the pool's cash (v3.1+ virtual balance, else the underlying
held by the aToken), aToken and debt-token supplies, the price oracle; then the asset price.

Convention: ``currentLiquidityRate`` is an APR in ray (1e27); Aave's UI shows
``(1 + r / 31536000) ** 31536000 - 1``, which is the ``apy`` here. Rates and amounts are converted
from integers once, exactly, with :func:`~bondfolio.adapters.base.fraction`.
"""

from __future__ import annotations

from typing import Any, Literal

from bondfolio.adapters.base import (
    RAY,
    Address,
    Fn,
    MarketSpec,
    ReadContext,
    Reader,
    apr_to_apy,
    fraction,
)
from bondfolio.adapters.erc20 import DECIMALS, SYMBOL

__all__ = ["AaveV3Market", "configuration_flags"]

GET_RESERVE_DATA = Fn(
    "getReserveData(address)",
    # a static struct encodes like its fields in a row: decode them as 15 values
    "(uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,uint128,"
    "uint128,uint128",
)
ADDRESSES_PROVIDER = Fn("ADDRESSES_PROVIDER()", "address")
VIRTUAL_BALANCE = Fn("getVirtualUnderlyingBalance(address)", "uint128")
OPTIMAL = Fn("OPTIMAL_USAGE_RATIO()", "uint256")
BASE = Fn("getBaseVariableBorrowRate()", "uint256")
SLOPE1 = Fn("getVariableRateSlope1()", "uint256")
SLOPE2 = Fn("getVariableRateSlope2()", "uint256")
RATE_DATA_V31 = Fn("getInterestRateData(address)", "(uint256,uint256,uint256,uint256)")
TOTAL_SUPPLY = Fn("totalSupply()", "uint256")
BALANCE_OF = Fn("balanceOf(address)", "uint256")
PRICE_ORACLE = Fn("getPriceOracle()", "address")
ASSET_PRICE = Fn("getAssetPrice(address)", "uint256")
BASE_UNIT = Fn("BASE_CURRENCY_UNIT()", "uint256")

#: Price units of Aave's oracle when it does not say (USD with 8 decimals).
DEFAULT_PRICE_UNIT = 10**8


def configuration_flags(config: int) -> dict[str, Any]:
    """Fields of a reserve's configuration bitmap (Aave v3 ReserveConfiguration)."""
    return {
        "decimals": (config >> 48) & 0xFF,
        "active": bool((config >> 56) & 1),
        "frozen": bool((config >> 57) & 1),
        "borrowing_enabled": bool((config >> 58) & 1),
        "paused": bool((config >> 60) & 1),
        "reserve_factor_bps": (config >> 64) & 0xFFFF,
        "supply_cap": (config >> 116) & ((1 << 36) - 1),
    }


class AaveV3Market(MarketSpec):
    """``protocol = "aave-v3"``: one reserve of a Pool. Needs ``pool`` and ``asset`` addresses."""

    protocol: Literal["aave-v3"] = "aave-v3"
    pool: Address
    """The Pool (proxy) address."""
    asset: Address
    """The reserve's underlying token address."""

    key_field = "pool"
    default_risk_score = 0.10


    def address_label(self) -> str:
        return f"{self.pool}/{self.asset}"

    def reader(self, ctx: ReadContext) -> Reader:
        asset = self.asset
        first = yield [GET_RESERVE_DATA(self.pool, asset), SYMBOL(asset), DECIMALS(asset),
                       ADDRESSES_PROVIDER(self.pool)]
        reserve = self.expect(first[0], "reading the reserve").values
        assert reserve is not None
        a_token, stable_debt, variable_debt, strategy = reserve[8], reserve[9], reserve[10], reserve[11]
        if int(a_token, 16) == 0:
            raise self.fail(f"asset {asset} is not a reserve of pool {self.pool}: check the asset address")
        symbol = self.symbol or (first[1].value if first[1].ok else asset)
        decimals = int(self.expect(first[2], "reading the token's decimals").value)
        provider = self.expect(first[3], "reading the addresses provider").value
        flags = configuration_flags(int(reserve[0][0]))

        second = yield [OPTIMAL(strategy), BASE(strategy), SLOPE1(strategy), SLOPE2(strategy),
                        RATE_DATA_V31(strategy, asset), VIRTUAL_BALANCE(self.pool, asset),
                        BALANCE_OF(asset, a_token), TOTAL_SUPPLY(a_token), TOTAL_SUPPLY(variable_debt),
                        TOTAL_SUPPLY(stable_debt), PRICE_ORACLE(provider)]
        if all(r.ok for r in second[:4]):
            optimal, base, slope1, slope2 = (int(r.value) for r in second[:4])
            version = "3.0"
        elif second[4].ok:
            optimal, base, slope1, slope2 = (int(v) for v in second[4].value)
            version = "3.1+"
        else:
            raise self.fail(f"strategy {strategy} answers neither the v3.0 getters nor getInterestRateData")
        cash = int(second[5].value) if second[5].ok and version == "3.1+" else int(
            self.expect(second[6], "reading the pool's cash").value)
        supplied = int(self.expect(second[7], "reading the aToken supply").value)
        debt = int(self.expect(second[8], "reading variable debt").value) + int(
            self.expect(second[9], "reading stable debt").value)
        oracle = self.expect(second[10], "reading the price oracle").value

        third = yield [ASSET_PRICE(oracle, asset), BASE_UNIT(oracle)]
        price_raw = int(self.expect(third[0], "reading the asset price").value)
        unit = int(third[1].value) if third[1].ok else DEFAULT_PRICE_UNIT
        price = fraction(price_raw, unit)
        scale = 10**decimals

        liquidity_rate = fraction(int(reserve[2]), RAY)
        # supply cap (whole tokens, 0 = none) against the aTokens plus the treasury's accrued share
        cap = flags["supply_cap"] * scale
        accrued = int(reserve[12]) * int(reserve[1]) // RAY
        headroom = max(cap - supplied - accrued, 0) if cap else None
        utilization = fraction(debt, debt + cash) if debt + cash else 0.0
        return {
            "id": self.id or f"aave-v3-{self.chain}-{symbol.lower()}",
            "protocol": "aave-v3",
            "chain": self.chain,
            "asset": symbol,
            "kind": "floating",
            "apy": apr_to_apy(liquidity_rate),
            "duration": 0.0,
            "available_liquidity": fraction(cash, scale) * price,
            "tvl": fraction(supplied, scale) * price,
            "price": price,
            "market": f"{self.pool}:{asset}",
            "depositable": flags["active"] and not flags["frozen"] and not flags["paused"],
            "rate_curve": {
                "model": "kinked", "applies_to": "borrow", "kink": fraction(optimal, RAY),
                "base": fraction(base, RAY), "slope_low": fraction(slope1, RAY), "slope_high": fraction(slope2, RAY),
                "reserve_factor": flags["reserve_factor_bps"] / 1e4,
                "total_supply": fraction(debt + cash, scale) * price, "total_borrow": fraction(debt, scale) * price,
            },
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "aave-v3", "target": self.pool, "asset": asset,
                "asset_symbol": symbol, "asset_decimals": decimals, "asset_price": price, "receipt": a_token,
                "measure": "atoken_balance", "receipt_decimals": decimals, "free_liquidity": cash,
                "deposit_headroom": headroom,
            },
            "_details": {
                "liquidity_rate_ray": int(reserve[2]), "variable_borrow_rate_ray": int(reserve[4]),
                "utilization": utilization, "strategy": strategy, "layout": version, **flags,
            },
        }
