"""Round trips and time to read 100 markets at one pinned block (target, issue 3: <= 3 round trips).

Starts anvil, builds the devnet world, writes a MARKETS.toml of ``--markets`` entries cycling through
the world's seven markets (Aave v3, Comet-ABI, Morpho Blue, ERC-4626, Pendle), and reads it twice:
through Multicall3 and, with Multicall3's code removed, through batched JSON-RPC. Prints rounds
(reader round trips), HTTP requests (rounds + pin + block-hash check) and wall time, beside the naive
baseline of one request per call.

Run: ``npm ci && python benchmarks/bench_snapshot.py [--markets 100]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web3 import Web3  # noqa: E402

from bondfolio.adapters.base import MULTICALL3  # noqa: E402
from bondfolio.adapters.snapshot import read_snapshot  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.world import build_world  # noqa: E402


def markets_toml(template: str, count: int) -> str:
    tables = template.split("[[markets]]")[1:]
    out = []
    for i in range(count):
        body = "\n".join(line for line in tables[i % len(tables)].splitlines() if not line.startswith("id ="))
        out.append(f'[[markets]]{body}\nid = "m{i:04d}"\n')
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=100)
    args = parser.parse_args()
    with Anvil.start() as node, tempfile.TemporaryDirectory() as tmp:
        world = build_world(Web3(Web3.HTTPProvider(node.url)))
        path = Path(tmp) / "markets.toml"
        path.write_text(markets_toml(world.markets_toml(), args.markets))
        print(f"{'transport':<18} {'markets':>7} {'rounds':>6} {'requests':>8} {'calls':>6} {'seconds':>8}  "
              "target: rounds <= 3")
        for transport in ("Multicall3", "JSON-RPC batch"):
            if transport != "Multicall3":
                node.rpc("anvil_setCode", MULTICALL3, "0x")
            start = time.perf_counter()
            snapshot, report = read_snapshot(path, {"devnet": node.url}, block=world.block)
            seconds = time.perf_counter() - start
            info = report["devnet"]
            calls = info.get("calls", 0)
            print(f"{transport:<18} {len(snapshot.opportunities):>7} {info['rounds']:>6} {info['requests']:>8} "
                  f"{calls:>6} {seconds:>8.3f}")
        print(f"naive baseline (one request per call): {calls} requests, i.e. {calls / info['requests']:.0f}x more")


if __name__ == "__main__":
    main()
