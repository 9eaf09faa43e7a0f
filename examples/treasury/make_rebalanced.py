"""The holdings the example treasury has after acting on the gate's decision (its target amounts).

    python -m bondfolio rebalance-check examples/treasury/snapshot.json examples/treasury/gate.toml \
        --holdings examples/treasury/holdings.json --out out/gate-decision.json
    python examples/treasury/make_rebalanced.py out/gate-decision.json > examples/treasury/holdings-rebalanced.json
"""

from __future__ import annotations

import json
import sys

from bondfolio.solver.record import load_decision


def main(path: str) -> None:
    record = load_decision(path)
    positions = {a.id: round(a.amount, 2) for a in record.allocation if a.amount >= 0.005}
    print(json.dumps({"schema": "bondfolio.holdings/1", "positions": positions, "cash": round(record.cash.amount, 2)},
                     indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
