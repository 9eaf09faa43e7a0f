"""MetaMorpho vaults: ERC-4626 over several Morpho Blue markets with per-market supply caps.

Three rounds: the vault (asset, totals, fee, ``MORPHO()``, the withdraw queue read speculatively up to
MetaMorpho's 30-market limit, the share price now and ``lookback_blocks`` earlier); then for each
market its state, parameters, the vault's position and cap; then each market's IRM rate.

``apy`` is forward-looking, as Morpho's app shows it: the vault's assets in each market times that
market's supply APY (``expm1(borrow_rate * u * (1 - fee) * year)``), summed over total assets
(idle assets earn nothing), net of the vault's performance fee. The realized share-price growth over
the lookback is in the read report. ``available_liquidity`` is idle assets plus, per market, the
smaller of the vault's supply and the market's free liquidity. Vault shares convert to assets with
Morpho's virtual shares (1e6) and assets (1).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from bondfolio.adapters.base import (
    SECONDS_PER_YEAR,
    WAD,
    Address,
    Fn,
    ReadContext,
    Reader,
    UnitPriced,
    block_timestamp,
    fraction,
)
from bondfolio.adapters.erc20 import BALANCE_OF, DECIMALS, SYMBOL
from bondfolio.adapters.erc4626 import ASSET, CONVERT_TO_ASSETS, TOTAL_ASSETS, TOTAL_SUPPLY, growth_apy
from bondfolio.adapters.morpho_blue import BORROW_RATE_VIEW, MARKET, PARAMS, RATE_AT_TARGET

__all__ = ["MAX_QUEUE", "MetaMorphoVault"]

MORPHO = Fn("MORPHO()", "address")
FEE = Fn("fee()", "uint96")
QUEUE_LENGTH = Fn("withdrawQueueLength()", "uint256")
WITHDRAW_QUEUE = Fn("withdrawQueue(uint256)", "bytes32")
CONFIG = Fn("config(bytes32)", "uint184,bool,uint64")
POSITION = Fn("position(bytes32,address)", "uint256,uint128,uint128")

#: MetaMorpho's maximum queue length: the queue is read in one round without knowing its length.
MAX_QUEUE = 30
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
SHARE_UNIT = 10**18


class MetaMorphoVault(UnitPriced):
    """``protocol = "metamorpho"``: a MetaMorpho vault by ``vault`` address."""

    protocol: Literal["metamorpho"] = "metamorpho"
    vault: Address
    lookback_blocks: int = Field(default=50_400, ge=1)
    """Blocks between the two share-price reads (realized growth, reported beside the forward APY)."""

    key_field = "vault"
    default_risk_score = 0.20



    def reader(self, ctx: ReadContext) -> Reader:
        then = max(ctx.block_number - self.lookback_blocks, 0)
        v = self.vault
        first = yield [ASSET(v), TOTAL_ASSETS(v), MORPHO(v), FEE(v), QUEUE_LENGTH(v), SYMBOL(v),
                       CONVERT_TO_ASSETS(v, SHARE_UNIT), CONVERT_TO_ASSETS(v, SHARE_UNIT).at(then),
                       block_timestamp(then), DECIMALS(v), TOTAL_SUPPLY(v),
                       *(WITHDRAW_QUEUE(v, i) for i in range(MAX_QUEUE))]
        asset = self.expect(first[0], "reading the vault's asset").value
        total = int(self.expect(first[1], "reading total assets").value)
        morpho = self.expect(first[2], "reading MORPHO()").value
        vault_fee = fraction(int(self.expect(first[3], "reading the vault fee").value), WAD)
        length = int(self.expect(first[4], "reading the withdraw queue length").value)
        if length > MAX_QUEUE:
            raise self.fail(f"withdraw queue has {length} markets, more than MetaMorpho's {MAX_QUEUE}")
        share_decimals = int(self.expect(first[9], "reading the vault's decimals").value)
        share_scale = 10**share_decimals
        shares = int(self.expect(first[10], "reading the vault's total supply").value)
        ids = [self.expect(first[11 + i], f"reading withdraw queue entry {i}").value for i in range(length)]
        p1 = int(self.expect(first[6], "reading the share price").value)
        p0 = int(self.expect(first[7], f"reading the share price at block {then}").value)
        t0 = int(self.expect(first[8], f"reading the timestamp of block {then}").value)

        second = yield [SYMBOL(asset), DECIMALS(asset), BALANCE_OF(asset, v),
                        *(c for key in ids for c in (MARKET(morpho, key), PARAMS(morpho, key), POSITION(morpho, key, v),
                                                     CONFIG(v, key)))]
        symbol = self.symbol or (second[0].value if second[0].ok else asset)
        asset_decimals = int(self.expect(second[1], "reading the asset's decimals").value)
        scale = 10**asset_decimals
        idle = int(self.expect(second[2], "reading idle assets").value)
        markets: list[dict[str, Any]] = []
        for k, key in enumerate(ids):
            market, params, position, config = (self.expect(r, f"reading market {key.hex()}").values
                                                for r in second[3 + 4 * k: 7 + 4 * k])
            assert market is not None and params is not None and position is not None and config is not None
            supplied = int(position[0]) * (int(market[0]) + VIRTUAL_ASSETS) // (int(market[1]) + VIRTUAL_SHARES)
            markets.append({"id": "0x" + key.hex(), "market": market, "params": params, "assets": supplied,
                            "cap": int(config[0]), "enabled": bool(config[1])})

        third = yield [c for m in markets for c in (BORROW_RATE_VIEW(m["params"][3], tuple(m["params"]),
                                                                      tuple(m["market"])),
                                                      RATE_AT_TARGET(m["params"][3], bytes.fromhex(m["id"][2:])))]
        income = 0.0
        withdrawable = idle
        for k, m in enumerate(markets):
            borrow_rate = int(self.expect(third[2 * k], f"reading the borrow rate of market {m['id']}").value)
            supply, borrow, fee = int(m["market"][0]), int(m["market"][2]), int(m["market"][5])
            u = fraction(borrow, supply) if supply else 0.0
            m["supply_apy"] = math.expm1(fraction(borrow_rate * SECONDS_PER_YEAR, WAD) * u * (1 - fraction(fee, WAD)))
            income += m["assets"] * m["supply_apy"]
            withdrawable += min(m["assets"], max(supply - borrow, 0))
        apy = income / total * (1 - vault_fee) if total else 0.0
        # MetaMorpho's maxDeposit: what the enabled markets' supply caps still take
        headroom = sum(max(m["cap"] - m["assets"], 0) for m in markets if m["enabled"])
        try:
            realized: float | None = growth_apy(p0, p1, ctx.timestamp - t0)
        except ValueError:
            realized = None  # window too short or degenerate: the forward APY does not depend on it
        vault_symbol = first[5].value if first[5].ok else v
        return {
            "id": self.id or f"metamorpho-{self.chain}-{str(vault_symbol).lower()}",
            "protocol": "metamorpho", "chain": self.chain, "asset": symbol, "kind": "vault",
            "apy": apy, "duration": 0.0,
            "available_liquidity": fraction(withdrawable, scale) * self.price,
            "tvl": fraction(total, scale) * self.price,
            "price": fraction(p1 * share_scale, scale * SHARE_UNIT) * self.price, "market": v,
            **({"rate_curve": {"model": "dilution", "total_assets": fraction(total, scale) * self.price}}
               if total > 0 else {}),
            "execution": {
                "chain_id": ctx.chain_id, "protocol": "metamorpho", "target": v, "asset": asset,
                "asset_symbol": symbol, "asset_decimals": asset_decimals, "asset_price": self.price, "receipt": v,
                "measure": "vault_shares", "receipt_decimals": share_decimals, "free_liquidity": withdrawable,
                "deposit_headroom": headroom, "total_assets": total, "total_shares": shares,
            },
            "_details": {
                "markets": [{"id": m["id"], "assets": m["assets"], "cap": m["cap"], "supply_apy": m["supply_apy"]}
                            for m in markets],
                "idle": idle, "realized_apy": realized,
            },
        }
