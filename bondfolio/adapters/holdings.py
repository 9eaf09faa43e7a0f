"""``bondfolio holdings``: an account's positions in every market of MARKETS.toml, at one pinned block.

The markets are read exactly as ``bondfolio snapshot`` reads them (same batching, same retries and
fault handling); then, at the same pinned block, one more round asks each market for the account's
position in the market's own measure (see :mod:`bondfolio.inputs.execution`) and each asset token
for the account's idle balance. Only then is the pinned block re-checked by hash, so the holdings
never mix blocks.

The result is the holdings format ``bondfolio allocate`` takes: positions in base currency (assets x
the asset's price), and the exact token base units beside them (``units``), idle balances (``idle``,
their sum is ``cash``), the account and the blocks read. Read-only: no key, no transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bondfolio.adapters.base import Call, Fn, Result
from bondfolio.adapters.erc20 import BALANCE_OF
from bondfolio.adapters.snapshot import ChainRead, read_chains
from bondfolio.errors import MarketError
from bondfolio.inputs.base import parse_address
from bondfolio.inputs.execution import Execution
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.snapshot import Snapshot

__all__ = ["position_call", "read_holdings"]

POSITION = Fn("position(bytes32,address)", "uint256,uint128,uint128")


def position_call(ex: Execution, account: str) -> Call:
    """The call that answers ``account``'s position in the market, in the market's measure."""
    if ex.measure == "morpho_supply_shares":
        assert ex.market_id is not None
        return POSITION(ex.target, bytes.fromhex(ex.market_id[2:]), account)
    return BALANCE_OF(ex.receipt, account)


def position_units(ex: Execution, result: Result, where: str) -> int:
    """Decode a :func:`position_call` result (supply shares for Morpho, a balance otherwise)."""
    if not result.ok or result.values is None:
        raise MarketError(f"{where}: reading the account's position ({result.call.fn.signature} on "
                          f"{result.call.target}) failed: check the market")
    return int(result.values[0])


def read_holdings(markets: str | Path, rpc: Mapping[str, str], account: str, block: int | None = None,
                  progress: Callable[[str], None] | None = None, retries: int = 4,
                  backoff: float = 0.25, timeout: float = 20.0) -> tuple[Holdings, Snapshot]:
    """The account's holdings in every listed market (and the snapshot read with them).

    Raises
    ------
    InputError
        A bad account address or block, or a markets file problem.
    ChainError
        The node failed after bounded retries, or the pinned block changed while it was read.
    """
    account = parse_address(account, "--account")
    read = read_chains(markets, rpc, block, progress, retries, backoff, verify=False, timeout=timeout)
    snapshot = read.snapshot()
    by_id = {o.id: o for o in snapshot.opportunities}
    positions: dict[str, float] = {}
    units: dict[str, dict[str, int]] = {}
    idle: list[dict[str, Any]] = []
    blocks: dict[str, int] = {}
    for chain in read.chains:
        _read_positions(chain, by_id, account, positions, units, idle)
        chain.client.verify()
        assert chain.client.block is not None
        blocks[chain.chain] = chain.client.block.number
    holdings = {"schema": "bondfolio.holdings/1", "unit": "base", "positions": positions,
                "cash": sum(i["value"] for i in idle), "account": account, "blocks": blocks, "units": units,
                "idle": idle}
    return load_holdings(holdings), snapshot


def _read_positions(chain: ChainRead, by_id: dict[str, Any], account: str, positions: dict[str, float],
                    units: dict[str, dict[str, int]], idle: list[dict[str, Any]]) -> None:
    opps = [by_id[o["id"]] for o in chain.opportunities]
    held: list[tuple[Any, Execution]] = [(o, o.execution) for o in opps if o.execution is not None]
    assets: dict[str, Execution] = {}
    for _, ex in held:
        assets.setdefault(ex.asset, ex)
    calls = [position_call(ex, account) for _, ex in held]
    calls += [BALANCE_OF(token, account) for token in assets]
    results = chain.client.execute(calls)
    for (o, ex), result in zip(held, results[:len(held)], strict=True):
        n = position_units(ex, result, f"{o.id} on {chain.chain}")
        amount = ex.assets_of(n)
        if n:
            # PTs are worth their price (below par before maturity); everything else its assets
            positions[o.id] = (n / 10**ex.receipt_decimals * o.price if ex.measure == "pt_balance"
                               else amount / 10**ex.asset_decimals * ex.asset_price)
            units[o.id] = {"units": n, "assets": amount}
    for (token, ex), result in zip(assets.items(), results[len(held):], strict=True):
        if not result.ok:
            raise MarketError(f"balance of {ex.asset_symbol} ({token}) on {chain.chain} could not be read")
        raw = int(result.value)
        if raw:
            idle.append({"chain": chain.chain, "token": token, "symbol": ex.asset_symbol,
                         "decimals": ex.asset_decimals, "units": raw,
                         "value": raw / 10**ex.asset_decimals * ex.asset_price})
