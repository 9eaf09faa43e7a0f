"""replay: byte-identical, tolerant and differing re-solves."""


from __future__ import annotations

import json
from typing import Any

import bondfolio
from bondfolio.audit.replay import replay
from bondfolio.solver.record import HASH_KEY
from tests.factories import (
    reseal,
    two_assets,
)


# ---------------------------------------------------------------------------------------------- replay
def test_replay_is_byte_identical(example_record: dict[str, Any]) -> None:
    result = replay(example_record)
    assert result.verdict == "identical" and result.ok
    assert result.record is not None and result.record.sha256 == example_record[HASH_KEY]


def test_replay_tolerance_and_differences() -> None:
    snap, pol = two_assets()
    rec = bondfolio.allocate(snap, pol).to_dict()
    near = json.loads(json.dumps(rec))
    near["allocation"][0]["weight"] += 5e-8  # inside the stated 1e-7 tolerance
    assert replay(reseal(near)).verdict == "equivalent"
    far = json.loads(json.dumps(rec))
    far["allocation"][0]["weight"] = 0.25
    result = replay(reseal(far))
    assert result.verdict == "different" and not result.ok
    paths = [d.path for d in result.differences]
    assert "allocation[a].weight" in paths
    assert "different" in result.text()


def test_amounts_and_tokens_are_compared_at_a_fraction_of_nav() -> None:
    """Currency amounts get the values' 1e-7 as a fraction of NAV (a $1e-5 position against $2e-5 on a
    $100m book is solver noise at 1e-13 of NAV), tokens the same at the row's price; weights keep 1e-7."""
    from bondfolio.audit.replay import compare_records

    row = {"id": "a", "weight": 0.5, "amount": 5e7, "tokens": 2.5e4, "trade_amount": 1e-5, "trade_tokens": 5e-9}
    old = {"metrics": {"nav": 1e8}, "allocation": [row], "check": {"worst": {"constraint": "x", "row": "r",
                                                                              "violation": 1e-12}}}

    def changed(**fields: float | str) -> list[str]:
        new = json.loads(json.dumps(old))
        for key, value in fields.items():
            if key.startswith("worst_"):
                new["check"]["worst"][key[6:]] = value
            else:
                new["allocation"][0][key] = value
        return [d.path for d in compare_records(old, new) if not d.informational]

    assert changed(trade_amount=2e-5) == []  # 1e-5 of currency on a 1e8 NAV
    assert changed(trade_amount=1e-5 + 9.0) == []  # 9 < 1e-7 * 1e8 = 10
    assert changed(trade_amount=1e-5 + 11.0) == ["allocation[a].trade_amount"]
    # tokens at the row's price (amount / tokens = 2,000): 10 of currency is 0.005 tokens
    assert changed(trade_tokens=0.004) == []
    assert changed(trade_tokens=0.006) == ["allocation[a].trade_tokens"]
    assert changed(weight=0.5 + 1e-6) == ["allocation[a].weight"]  # weights: 1e-7 + 1e-6 relative, as before
    # which row is the check's worst follows solver noise; its violation is compared as a number
    assert changed(worst_constraint="y", worst_row="s") == []
    assert changed(worst_violation=1e-3) == ["check.worst.violation"]
