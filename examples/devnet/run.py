"""The whole pipeline on a local chain, no RPC key needed:

    python examples/devnet/run.py [--keep]

Starts anvil (from npm), deploys the devnet world (a real Aave v3 market, Morpho Blue with an
adaptive-curve IRM, a Comet-ABI market, an ERC-4626 savings vault, two Pendle-ABI PT markets,
Multicall3), writes ``out/devnet/markets.toml``, reads every market at one pinned block into
``out/devnet/snapshot.json`` with ``bondfolio snapshot``, allocates with ``policy.toml`` and prints the
decision. Needs ``npm ci`` and ``pip install -e .`` first. ``--keep`` leaves anvil running and prints
its URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from web3 import Web3  # noqa: E402

from bondfolio.cli import main as bondfolio  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.world import build_world  # noqa: E402


def run(keep: bool = False) -> int:
    out = ROOT / "out" / "devnet"
    out.mkdir(parents=True, exist_ok=True)
    node = Anvil.start()
    try:
        print(f"anvil running at {node.url}; deploying the devnet world ...")
        world = build_world(Web3(Web3.HTTPProvider(node.url)))
        markets = out / "markets.toml"
        markets.write_text(world.markets_toml() + "\n")
        print(f"markets written to {markets}\n")
        snapshot = out / "snapshot.json"
        code = bondfolio(["snapshot", "--rpc", node.url, "--markets", str(markets), "--out", str(snapshot)])
        if code:
            return code
        print()
        code = bondfolio(["allocate", str(snapshot), str(Path(__file__).with_name("policy.toml")),
                          "--out", str(out / "decision.json")])
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
