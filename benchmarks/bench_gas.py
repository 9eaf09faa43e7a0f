"""Gas per leg, measured on the local chain through a real Safe 1.4.1, against bondfolio.inputs.gas.

    npm ci && pip install -e . && python benchmarks/bench_gas.py

Builds the devnet world and a 1-of-1 Safe holding a position in every market (as the devnet test
does), then, for every protocol and action, executes a batch holding only that leg and measures its
gas: the leg's gas is the batch's gas used less the gas of a batch holding one no-op call (the Safe's
execTransaction and the MultiSendCallOnly loop). Prints measured, table and table / measured, and the
measured overhead against the table's BATCH_OVERHEAD. Each leg runs on a fresh evm_snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web3 import Web3  # noqa: E402

from bondfolio.execution.actions import (  # noqa: E402
    deposit_calls,
    exit_call,
    pendle_buy_calls,
    pendle_sell_calls,
    withdraw_call,
)
from bondfolio.execution.safe import multisend  # noqa: E402
from bondfolio.inputs.gas import BATCH_OVERHEAD, GAS  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.deploy import Deployer  # noqa: E402
from devnet.pendle import buy_pt  # noqa: E402
from devnet.safe import deploy_safe, execute, fund_safe  # noqa: E402
from devnet.world import build_world  # noqa: E402

#: mint(address,uint256) of the devnet's test tokens (TestToken and Aave's MintableERC20 both have it)
MINT_ABI = [{"type": "function", "name": "mint", "stateMutability": "nonpayable", "outputs": [],
             "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}]}]


def main() -> None:
    from bondfolio.adapters.holdings import read_holdings

    node = Anvil.start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        world = build_world(w3)
        markets = ROOT / "out" / "bench-gas-markets.toml"
        markets.parent.mkdir(exist_ok=True)
        sw = deploy_safe(w3, w3.eth.accounts[0])
        fund_safe(w3, world, sw)
        for market in world.pendle_markets.values():  # and PTs of each Pendle market
            buy_pt(w3, world.pendle_router, market, world.aave.tokens["DAI"], sw.safe.address, 50_000 * 10**18,
                   w3.eth.accounts[6])
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        markets.write_text(world.markets_toml(world.vault_lookback_blocks + w3.eth.block_number - world.block))
        holdings, snapshot = read_holdings(markets, {"devnet": node.url}, sw.safe.address)
        safe = sw.safe.address

        def run(calls: list[tuple[str, int, bytes]]) -> int:
            snap = node.rpc("evm_snapshot")
            try:
                receipt = execute(w3, sw, sw.multisend, multisend(calls), operation=1)
                return int(receipt["gasUsed"])
            finally:
                node.rpc("evm_revert", snap)

        # approve(comet, 0): a call that changes no storage (the allowance is already 0)
        noop = [(world.comet_base, 0, bytes.fromhex("095ea7b3") + bytes(12) + bytes.fromhex(world.comet[2:])
                 + bytes(32))]
        overhead = run(noop)
        print(f"{'protocol':<14} {'action':<9} {'measured':>9} {'table':>9} {'table/measured':>15}")
        units = holdings.units or {}
        for o in snapshot.opportunities:
            ex = o.execution
            if ex is None or o.id not in units:
                continue
            held = units[o.id]
            amount = held.assets // 10
            if ex.protocol == "pendle-pt":  # sell a tenth, sell all, buy (no minimum: gas, not price, is measured)
                legs = {"withdraw": pendle_sell_calls(ex, held.units // 10, 0, safe, False),
                        "exit": pendle_sell_calls(ex, held.units, 0, safe, False),
                        "deposit": pendle_buy_calls(ex, amount, 0, 0, safe)}
            else:
                legs = {"withdraw": [withdraw_call(ex, amount, safe)], "exit": [exit_call(ex, held.units, safe)],
                        "deposit": deposit_calls(ex, amount, safe)}
            token = w3.eth.contract(address=ex.asset, abi=MINT_ABI)
            for action, calls in legs.items():
                if action == "deposit":  # cold: the Safe's idle balance pays (minted to it first)
                    snap = node.rpc("evm_snapshot")
                    try:
                        Deployer(w3).send(token.functions.mint(safe, amount))
                        gas = run([(c.to, c.value, c.data) for c in calls]) - overhead
                    finally:
                        node.rpc("evm_revert", snap)
                else:
                    gas = run([(c.to, c.value, c.data) for c in calls]) - overhead
                table = GAS[(ex.protocol, action)]
                print(f"{ex.protocol:<14} {action:<9} {gas:>9,} {table:>9,} {table / gas:>15.2f}")
        print(f"{'overhead':<24} {overhead:>9,} {BATCH_OVERHEAD:>9,} {BATCH_OVERHEAD / overhead:>15.2f}")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
