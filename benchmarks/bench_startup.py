"""Start-up time of the command line (target: --help and schema under 0.4 s), medians of 5 runs.

    pip install -e . && python benchmarks/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(args: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bondfolio", *args], capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    for args in (["--help"], ["schema", "snapshot"], ["schema", "decision"], ["schema", "policy"]):
        s = median_seconds(args)
        print(f"bondfolio {' '.join(args):<18} {s:.3f} s (target < 0.4 s: {'met' if s < 0.4 else 'missed'}; "
              f"{s / 0.4:.2f}x the target)")


if __name__ == "__main__":
    main()
