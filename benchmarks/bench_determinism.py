"""Determinism: the example decided 100 times gives byte-identical decision JSON (everything but ``timing``).

Runs ``--runs`` allocations in this process and ``--processes`` in fresh interpreters (each with its
own PYTHONHASHSEED), compares the canonical JSON of each record without ``timing`` and its
``record_sha256``, and prints how many distinct records came out (target: 1) and the time per run.

Run: ``python benchmarks/bench_determinism.py [--runs 100] [--processes 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import bondfolio
from bondfolio.solver.record import hashed_part

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "treasury"
FILES = [str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"), str(EXAMPLE / "holdings.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    texts: set[str] = set()
    hashes: set[str] = set()
    start = time.perf_counter()
    for _ in range(args.runs):
        record = bondfolio.allocate(*FILES).to_dict()
        texts.add(json.dumps(hashed_part(record), indent=2, ensure_ascii=False))
        hashes.add(record["record_sha256"])
    seconds = (time.perf_counter() - start) / args.runs
    code = "import bondfolio,sys;print(bondfolio.allocate(*sys.argv[1:]).to_dict()['record_sha256'])"
    for seed in range(args.processes):
        out = subprocess.run([sys.executable, "-c", code, *FILES], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed * 7919 + 1)})
        hashes.add(out.stdout.strip())
    print(f"{args.runs} in-process runs ({seconds * 1000:.0f} ms each): {len(texts)} distinct decision JSON "
          f"(without timing)")
    print(f"+ {args.processes} fresh processes with different hash seeds: {len(hashes)} distinct record_sha256 "
          f"overall -> {'byte-identical' if len(texts) == 1 and len(hashes) == 1 else 'NOT DETERMINISTIC'}")
    sys.exit(0 if len(texts) == 1 and len(hashes) == 1 else 1)


if __name__ == "__main__":
    main()
