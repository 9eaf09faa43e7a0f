"""The whole pipeline on a local chain, no RPC key needed:

    python examples/devnet/run.py [--keep]

Starts anvil (from npm), deploys the devnet world (a real Aave v3 market, Morpho Blue with an
adaptive-curve IRM, a Comet-ABI market, an ERC-4626 savings vault, the real Pendle V7 with two PT markets,
Multicall3) and a real Safe 1.4.1 (npm ``@safe-global/safe-contracts``) holding positions in every
market, then runs the treasury's batch job into ``out/devnet/``: ``bondfolio snapshot`` (every market
at one pinned block), ``bondfolio holdings`` (the Safe's positions), ``bondfolio allocate`` with
``policy.toml``, and ``bondfolio plan`` (the ordered legs, ``plan.json``, and the Transaction Builder
file ``batch.json`` the Safe's owners would sign). Needs ``npm ci`` and ``pip install -e .`` first.
``--keep`` leaves anvil running and prints its URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from web3 import Web3  # noqa: E402

from bondfolio.cli import PLAN_UNFIT  # noqa: E402
from bondfolio.cli import main as bondfolio  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.safe import deploy_safe, fund_safe  # noqa: E402
from devnet.world import build_world  # noqa: E402


def run(keep: bool = False) -> int:
    out = ROOT / "out" / "devnet"
    out.mkdir(parents=True, exist_ok=True)
    node = Anvil.start()
    try:
        print(f"anvil running at {node.url}; deploying the devnet world ...")
        w3 = Web3(Web3.HTTPProvider(node.url))
        world = build_world(w3)
        sw = deploy_safe(w3, w3.eth.accounts[0])
        fund_safe(w3, world, sw)
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        safe = sw.safe.address
        print(f"Safe {safe} (1-of-1, Safe 1.4.1) holds positions in every market\n")
        markets = out / "markets.toml"
        markets.write_text(world.markets_toml(world.vault_lookback_blocks + w3.eth.block_number - world.block) + "\n")
        print(f"markets written to {markets}\n")
        snapshot, holdings = out / "snapshot.json", out / "holdings.json"
        decision, plan = out / "decision.json", out / "plan.json"
        steps = [
            ["snapshot", "--rpc", node.url, "--markets", str(markets), "--out", str(snapshot)],
            ["holdings", "--rpc", node.url, "--markets", str(markets), "--account", safe, "--out", str(holdings)],
            ["allocate", str(snapshot), str(Path(__file__).with_name("policy.toml")), "--holdings", str(holdings),
             "--out", str(decision)],
            ["plan", str(decision), "--safe", safe, "--multisend", sw.multisend, "--out", str(plan),
             "--safe-batch", str(out / "batch.json")],
        ]
        code = 0
        for step in steps:
            print(f"$ bondfolio {' '.join(step[:1])} ...")
            code = bondfolio(step)
            print()
            if code == PLAN_UNFIT and step[0] == "plan":
                # the devnet's markets use three different USDC tokens: moving money between them needs
                # swaps, which the plan lists as intents instead of netting them: a flagged plan, as it should be
                print(f"plan and batch written to {out} (flagged: see the reasons above)")
                code = 0
            elif code:
                return code
        if keep and code == 0:
            pid = node.process.pid
            print(f"\nanvil keeps running at {node.url} (pid {pid}); stop it with: kill {pid}")
            return 0
        return code
    finally:
        if not keep:
            node.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave anvil running afterwards")
    sys.exit(run(parser.parse_args().keep))
