"""A cross-chain stablecoin policy over a year of real Aave v3 data, with one command:

    pip install -e . && python examples/backtest/run.py [--every 7d] [--gate]

Imports the bundled data (examples/backtest/data: 30 Aave v3 stablecoin reserves on 9 networks, daily,
2025-07-22 to 2026-08-22, MIT, see data/LICENSE.source) into out/backtest/history.duckdb, then
backtests policy.toml from 2025-08-21 to 2026-08-21 against buy-and-hold, equal weight and rate
chasing. Files land in out/backtest/ (nav.csv, weights.csv, metrics.json, decisions/, report.html).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bondfolio.cli import main as bondfolio  # noqa: E402

HERE = Path(__file__).resolve().parent


def run(every: str = "7d", gate: bool = False) -> int:
    out = ROOT / "out" / "backtest"
    out.mkdir(parents=True, exist_ok=True)
    store = out / "history.duckdb"
    store.unlink(missing_ok=True)
    code = bondfolio(["history", "import", "aave-v3-daily", str(HERE / "data" / "aave_v3_stables_daily.csv"),
                      "--store", str(store)])
    if code:
        return code
    args = ["backtest", str(HERE / "policy.toml"), "--history", str(store), "--universe", str(HERE / "universe.toml"),
            "--start", "2025-08-21", "--end", "2026-08-21", "--every", every, "--nav", "10000000",
            "--out", str(out / "result"), *(["--gate"] if gate else [])]
    return bondfolio(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", default="7d")
    parser.add_argument("--gate", action="store_true")
    a = parser.parse_args()
    sys.exit(run(a.every, a.gate))
