"""Start-up time of the command line (target: --help, schema and validate under 0.4 s), medians of 5 runs.

The baseline printed first is the bare interpreter (``python -c pass``) and ``import pydantic``, the floor
every command pays.

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


def median_python(code: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    print(f"baseline: python -c pass {median_python('pass'):.3f} s, import pydantic "
          f"{median_python('import pydantic'):.3f} s")
    example = ["examples/treasury/snapshot.json", "examples/treasury/policy.toml",
               "--holdings", "examples/treasury/holdings.json"]
    for args in (["--help"], ["schema", "snapshot"], ["schema", "decision"], ["schema", "policy"],
                 ["validate", *example]):
        s = median_seconds(args)
        print(f"bondfolio {' '.join(args[:2]):<18} {s:.3f} s (target < 0.4 s: {'met' if s < 0.4 else 'missed'}; "
              f"{s / 0.4:.2f}x the target)")


if __name__ == "__main__":
    main()
